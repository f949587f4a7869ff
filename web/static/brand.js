// Pages that only need the clinic's colours.
import { applyBrandFromBody } from "/static/theme.js";

applyBrandFromBody();

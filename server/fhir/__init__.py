"""FHIR R4 records for EHRs: Encounters from attendance, Observations and QuestionnaireResponses
from the measures; search bundles under /api/v1/fhir/."""

"""FHIR R4 search under /api/v1/fhir/ (admins): Bundles of type searchset, application/fhir+json.

Errors here are FHIR OperationOutcomes (what a FHIR client reads), with the product's error code
in `issue[0].details.coding[0].code` and the same HTTP status as anywhere else in the API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from aiohttp import web

from server.api.common import require_staff
from server.auth.staff import Role
from server.errors import ApiError, ErrorCode
from server.fhir import encounters, measures
from server.fhir.resources import FHIR_JSON, operation_outcome, searchset
from server.fhir.search import SearchError, date_range, only, reference_id
from server.services import services
from server.store.connection import UNAVAILABLE

FHIR = "/api/v1/fhir"
FHIR_ID_RE = re.compile(r"[A-Za-z0-9.-]{1,64}")
ISSUE_TYPES: dict[str, str] = {  # the product's codes as FHIR issue types
    ErrorCode.BAD_REQUEST: "invalid", ErrorCode.UNAUTHORIZED: "login", ErrorCode.FORBIDDEN: "forbidden",
    ErrorCode.NOT_FOUND: "not-found", ErrorCode.UNAVAILABLE: "transient",
}
ERROR_CODES = "urn:porchlight:error-code"  # the product's codes (server/errors.py), as a FHIR code system

Handler = Callable[[web.Request], Awaitable[web.Response]]


def fhir_response(resource: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(resource, separators=(",", ":")).encode(), status=status,
                        content_type=FHIR_JSON, charset="utf-8")


def _outcome(status: int, code: str, message: str, issue: str | None = None) -> web.Response:
    outcome = operation_outcome(issue or ISSUE_TYPES.get(code, "processing"), message)
    outcome["issue"][0]["details"] = {"coding": [{"system": ERROR_CODES, "code": str(code)}]}
    return fhir_response(outcome, status)


def fhir_endpoint(handler: Handler) -> Handler:
    """Errors of a FHIR endpoint as OperationOutcomes; counted like every other error."""

    @wraps(handler)
    async def wrapped(request: web.Request) -> web.Response:
        metrics = services(request).metrics
        try:
            return await handler(request)
        except SearchError as exc:
            metrics.error(ErrorCode.BAD_REQUEST)
            return _outcome(400, ErrorCode.BAD_REQUEST, str(exc), exc.issue)
        except ApiError as exc:
            metrics.error(exc.code)
            return _outcome(exc.status, exc.code, exc.message)
        except UNAVAILABLE:
            metrics.error(ErrorCode.UNAVAILABLE)
            return _outcome(503, ErrorCode.UNAVAILABLE, "the service is temporarily unavailable; try again")

    return wrapped


def _self_url(request: web.Request) -> str:
    return services(request).settings.public_url + str(request.rel_url)


# -- the OpenAPI description of these operations (server/api/openapi.py merges it) ------------------

_S = {"type": "string"}
_OUTCOME = {"type": "object", "required": ["resourceType", "issue"],
            "properties": {"resourceType": {"const": "OperationOutcome"}, "issue": {"type": "array"}}}
_BUNDLE = {"type": "object", "required": ["resourceType", "type", "entry"],
           "properties": {"resourceType": {"const": "Bundle"}, "type": {"const": "searchset"},
                          "total": {"type": "integer"}, "entry": {"type": "array"}}}


def _fhir(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {FHIR_JSON: {"schema": schema}}}


def _search_op(summary: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "summary": summary, "x-role": "admin", "security": [{"session": []}], "parameters": parameters,
        "responses": {"200": _fhir(_BUNDLE, "a searchset Bundle (empty when nothing matches)"),
                      **{str(status): _fhir(_OUTCOME, f"{meaning}: an OperationOutcome")
                         for status, meaning in ((400, "a bad or unknown search parameter"), (401, "not signed in"),
                                                 (403, "not an admin"), (503, "Redis is unavailable"))}},
    }


READABLE = ("Encounter", "Observation", "QuestionnaireResponse")


def _read_op(kind: str) -> dict[str, Any]:
    return {
        "summary": f"One {kind}, by the id a search Bundle's fullUrl names", "x-role": "admin",
        "security": [{"session": []}],
        "responses": {"200": _fhir({"type": "object", "required": ["resourceType", "id"],
                                    "properties": {"resourceType": {"const": kind}}}, f"the {kind}"),
                      **{str(status): _fhir(_OUTCOME, f"{meaning}: an OperationOutcome")
                         for status, meaning in ((401, "not signed in"), (403, "not an admin"),
                                                 (404, "no such resource"), (503, "Redis is unavailable"))}},
    }


def _param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": _S, "description": description}


PATIENT_PARAM = _param("patient", "a patient id (Patient/<id>; `_` may be written `.`)")
DATE_PARAM = {**_param("date", "the service date, with a prefix: eq (default), ge, gt, le, lt; repeatable"),
              "schema": {"type": "string", "pattern": r"^(eq|ge|gt|le|lt)?\d{4}-\d{2}-\d{2}$"}}
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", f"{FHIR}/Encounter"): _search_op(
        "FHIR R4 Encounters (class VR), one per attending patient per session: by session, or by patient and date",
        [_param("session", "a session id"), PATIENT_PARAM, DATE_PARAM]),
    ("GET", f"{FHIR}/Observation"): _search_op(
        "FHIR R4 Observations: a patient's PHQ-9 (LOINC 44261-6) and GAD-7 (70274-6) totals, category survey",
        [PATIENT_PARAM, DATE_PARAM]),
    ("GET", f"{FHIR}/QuestionnaireResponse"): _search_op(
        "FHIR R4 QuestionnaireResponses: a patient's answered PHQ-9 and GAD-7, item by item (LOINC answers)",
        [PATIENT_PARAM, DATE_PARAM]),
    **{("GET", f"{FHIR}/{kind}/{{fhir_id}}"): _read_op(kind) for kind in READABLE},
}
FHIR_ID = {"type": "string", "pattern": "^[A-Za-z0-9.-]{1,64}$"}  # the path parameter's schema (openapi.py)


@fhir_endpoint
async def search_encounters(request: web.Request) -> web.Response:
    """GET /fhir/Encounter?session=<id> | ?patient=<id>[&date=ge<YYYY-MM-DD>]"""
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    query = request.query
    only(query.keys(), {"session", "patient", "date"})
    if len(query.getall("session", [])) > 1 or len(query.getall("patient", [])) > 1:
        raise SearchError("session and patient: one value each")
    session_id = reference_id(query["session"], "session") if "session" in query else None
    patient_id = reference_id(query["patient"], "patient", "Patient") if "patient" in query else None
    if session_id is None and patient_id is None:
        raise SearchError("search by session or by patient (e.g. ?patient=<id>&date=ge2026-01-05)")
    today = datetime.fromtimestamp(svc.clock.now(), tz=UTC).date()
    dates = date_range(query.getall("date", []), today)
    found = await encounters.search(svc.redis, svc.settings.public_url, session_id=session_id,
                                    patient_id=patient_id, dates=dates)
    # Like every pull of attendance, a search is an export: the audit log says who took what.
    await svc.audit.append("fhir.search", staff.user.id, resource="Encounter", results=len(found))
    return fhir_response(searchset(found, _self_url(request), svc.settings.public_url + FHIR))


async def _patient_search(request: web.Request, kind: str) -> web.Response:
    """GET /fhir/{Observation|QuestionnaireResponse}?patient=<id>[&date=ge<YYYY-MM-DD>]"""
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    query = request.query
    only(query.keys(), {"patient", "date"})
    if len(query.getall("patient", [])) != 1:
        raise SearchError("patient: required, one value (e.g. ?patient=<id>)")
    patient_id = reference_id(query["patient"], "patient", "Patient")
    dates = date_range(query.getall("date", []), datetime.fromtimestamp(svc.clock.now(), tz=UTC).date())
    search = measures.observations if kind == "Observation" else measures.questionnaire_responses
    found = await search(svc.redis, patient_id, dates)
    await svc.audit.append("fhir.search", staff.user.id, resource=kind, results=len(found))
    return fhir_response(searchset(found, _self_url(request), svc.settings.public_url + FHIR))


@fhir_endpoint
async def search_observations(request: web.Request) -> web.Response:
    return await _patient_search(request, "Observation")


@fhir_endpoint
async def search_questionnaire_responses(request: web.Request) -> web.Response:
    return await _patient_search(request, "QuestionnaireResponse")


@fhir_endpoint
async def read_resource(request: web.Request) -> web.Response:
    """GET /fhir/{Encounter|Observation|QuestionnaireResponse}/{id}: where a Bundle's fullUrl points."""
    svc = services(request)
    staff = await require_staff(request, Role.ADMIN)
    kind, fhir_id = request.path.rsplit("/", 2)[-2], request.match_info["fhir_id"]
    if kind not in READABLE or not FHIR_ID_RE.fullmatch(fhir_id):
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no {kind} {fhir_id}")
    if kind == "Encounter":
        found = await encounters.read(svc.redis, svc.settings.public_url, fhir_id)
    else:
        found = await measures.read(svc.redis, kind, fhir_id)
    if found is None:
        raise ApiError(404, ErrorCode.NOT_FOUND, f"no {kind} {fhir_id}")
    await svc.audit.append("fhir.read", staff.user.id, resource=kind, results=1)
    return fhir_response(found)

"""The one error shape: {"error": {"code": "snake_case", "message": "...", "request_id": "...", ...}}."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        error = {"code": self.code, "message": self.message, **self.extra}
        if request_id is not None:
            error["request_id"] = request_id  # what to quote to the operator, who finds it in the logs
        return {"error": error}


def bad_request(message: str, code: str = "bad_request") -> ApiError:
    return ApiError(400, code, message)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def conflict(code: str, message: str, **extra: Any) -> ApiError:
    return ApiError(409, code, message, **extra)


def forbidden(message: str = "not allowed for this account") -> ApiError:
    return ApiError(403, "forbidden", message)

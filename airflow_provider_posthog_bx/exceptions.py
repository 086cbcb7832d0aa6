"""Typed errors raised by the PostHog batch-exports provider.

Every error raised after talking to PostHog carries the HTTP method and path (never the host's
credentials), and, when PostHog answered, its status and ``{type, code, detail, attr}`` body.
Errors that an Airflow task retry cannot fix (a bad key, a missing export, a rejected input, a
finished remote job that failed) also derive from ``AirflowFailException`` so Airflow does not
retry them.
"""

from __future__ import annotations

from airflow_provider_posthog_bx._compat import AirflowException, AirflowFailException


class PostHogError(AirflowException):
    """Base class of every error this provider raises."""


class PostHogConfigError(PostHogError, AirflowFailException):
    """The Airflow connection or an argument is unusable; nothing was sent to PostHog."""


class PostHogInputError(PostHogError, AirflowFailException, ValueError):
    """A task argument is invalid; raised before any request is sent.

    The message names the parameter, the bad value and what is accepted, e.g.
    ``start_at must be timezone-aware (got '2026-01-01T00:00:00'); pass an aware datetime or an
    ISO string with an offset``.
    """

    def __init__(self, param: str, value: object, problem: str, accepted: str) -> None:
        self.param = param
        self.value = value
        self._args = (param, value, problem, accepted)
        super().__init__(f"{param} {problem} (got {value!r}); {accepted}")

    def __reduce__(self) -> tuple[type[PostHogInputError], tuple[str, object, str, str]]:
        return type(self), self._args


class PostHogTransportError(PostHogError):
    """PostHog could not be reached, or its answer was lost or unreadable.

    :param sent: whether the request may have reached PostHog before the failure.
    """

    def __init__(self, method: str, path: str, reason: str, *, sent: bool) -> None:
        self.method = method
        self.path = path
        self.reason = reason
        self.sent = sent
        super().__init__(f"PostHog API {method} {path} failed: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), (self.method, self.path, self.reason), {"sent": self.sent}))


class PostHogAmbiguousRequestError(PostHogTransportError):
    """A request that creates remote work may or may not have been processed.

    The request is not re-sent automatically; the caller must look for the work it may have
    created (the backfill operator adopts a matching backfill) before trying again.
    """


class PostHogAPIError(PostHogError):
    """PostHog answered with an error status.

    :param attempts: how many times the request was sent.
    :param earlier_may_have_applied: an earlier try of this request may have reached PostHog
        and been processed, its answer lost (a dropped connection, a read timeout, a 502/504):
        e.g. a 404 for a DELETE then means "deleted by that try".
    """

    def __init__(
        self,
        *,
        method: str,
        path: str,
        status: int,
        detail: str,
        type: str | None = None,
        code: str | None = None,
        attr: str | None = None,
        attempts: int = 1,
        earlier_may_have_applied: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.type = type
        self.code = code
        self.detail = detail
        self.attr = attr
        self.attempts = attempts
        self.earlier_may_have_applied = earlier_may_have_applied
        qualifier = code or "no error code"
        if attr:
            qualifier += f", attr={attr}"
        tries = f" (after {attempts} tries)" if attempts > 1 else ""
        super().__init__(
            f"PostHog API {method} {path} returned {status} ({qualifier}): {detail}{tries}"
        )

    def __reduce__(self) -> tuple[object, ...]:
        fields = (
            "method",
            "path",
            "status",
            "detail",
            "type",
            "code",
            "attr",
            "attempts",
            "earlier_may_have_applied",
        )
        return (_rebuild, (type(self), (), {name: getattr(self, name) for name in fields}))


class PostHogValidationError(PostHogAPIError, AirflowFailException):
    """400: PostHog rejected the request's content."""


class PostHogAuthError(PostHogAPIError, AirflowFailException):
    """401/403: the key is missing, invalid, lacks a scope, or cannot see the project."""


class PostHogNotFoundError(PostHogAPIError, AirflowFailException):
    """404: the project, batch export, run or backfill does not exist (or is deleted)."""


class PostHogRateLimitError(PostHogAPIError):
    """429 throttled, still throttled after the configured retries."""


class PostHogConcurrencyLimitError(PostHogAPIError):
    """429 ``too_many_concurrent_backfills``: the team's backfill slots are all busy."""


class PostHogServerError(PostHogAPIError):
    """5xx from PostHog or a proxy in front of it."""


class BatchExportJobFailed(PostHogError, AirflowFailException):
    """A backfill or run finished in PostHog without succeeding; retrying the task won't help."""


def _rebuild(
    cls: type[Exception], args: tuple[object, ...], kwargs: dict[str, object]
) -> Exception:
    """Unpickle an error whose constructor takes keyword arguments."""
    return cls(*args, **kwargs)

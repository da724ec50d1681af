"""``GET /api/projections``: where each projection is, how far behind, and why it stopped."""

import orjson
from starlette.requests import Request
from starlette.responses import Response

from cqrs_demo.api.auth import BearerTokens
from cqrs_demo.api.parameters import query_parameters
from cqrs_demo.ports import OrderQueries, ProjectionStatus

PATH = "/api/projections"


class ProjectionsEndpoint:
    """Every projection's state (running, rebuilding, stopped with the error and the event
    it stopped at), its position, the feed's head, and the events and seconds between."""

    def __init__(self, read_models: OrderQueries, tokens: BearerTokens) -> None:
        self._read_models = read_models
        self._tokens = tokens

    async def __call__(self, request: Request) -> Response:
        self._tokens.authorize(request.scope)
        query_parameters(request.scope["query_string"], ())
        statuses = await self._read_models.projections()
        body = {"projections": [status_json(status) for status in statuses]}
        return Response(orjson.dumps(body), media_type="application/json")


def status_json(status: ProjectionStatus) -> dict[str, object]:
    checkpoint = status.checkpoint
    return {
        "name": status.projection,
        "state": checkpoint.state,
        "position": str(checkpoint.position),
        "head": str(status.head),
        "events_behind": status.events_behind,
        "seconds_behind": round(status.seconds_behind, 3),
        "events_applied": checkpoint.events_applied,
        "error": checkpoint.error,
        "failed_event_id": checkpoint.failed_event_id,
        "failed_event_type": checkpoint.failed_event_type,
    }

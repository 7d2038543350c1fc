"""Figures over time as CSV, for spreadsheets: `GET /api/stats.csv?from=&to=&by=day[&queue=]`.

The JSON of the same figures is `/api/stats` (desk/api.py); the desk's figures page links the page route
`/stats.csv` (desk/pages.py), signed in by the session cookie instead of a bearer token.
"""

from __future__ import annotations

import csv
import io
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from desk import figures
from desk.api import ApiAgent
from desk.inputs import refuse_unstorable_text
from desk.validation import unprocessable

router = APIRouter(prefix="/api", tags=["figures"], dependencies=[Depends(refuse_unstorable_text)])

CSV_RESPONSE = {200: {"content": {"text/csv": {}}, "description": "one row per day (and per queue)"}}


async def csv_response(request: Request, query: figures.PeriodQuery) -> Response:
    """The period's figures as a CSV attachment; 422 without a period (from/to are required here)."""
    if query.period is None:
        raise unprocessable(["query", "from"], "send `from` and `to` (YYYY-MM-DD): the days the CSV covers")
    days = await figures.daily(request.app.state.desk.db, query.period, queue=query.queue)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(figures.csv_rows(days, queue=query.queue))
    name = f"figures-{query.period.start}-{query.period.end}{'-' + query.queue if query.queue else ''}.csv"
    return Response(
        out.getvalue(), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/stats.csv", response_class=Response, responses=CSV_RESPONSE,  # type: ignore[arg-type]
    summary="The figures of every day of a period as CSV (one row per day and per queue)",
)
async def stats_csv(
    request: Request, agent: ApiAgent, period: Annotated[figures.PeriodQuery, Depends(figures.period_query)]
) -> Response:
    return await csv_response(request, period)

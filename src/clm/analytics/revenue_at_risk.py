"""Revenue at risk: what the customers at risk or unhappy are expected to spend in the next 12
months (their 12-month CLV), and what they have spent so far, read from the stored current
state (``customer_states``, kept by the live loop) in one grouped query on its health index.

"At risk" is the customer list's filter ``health_state=at_risk,unhappy``: the count here is
the number of rows that list shows, so the overview's figure and the list behind it agree.
Customers without a prediction add nothing to the CLV sum and are counted apart.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from clm.store.engine import Database
from clm.store.models import CustomerState

AT_RISK_STATES = ("at_risk", "unhappy")
DEFINITION = (
    "customers whose health is at risk or unhappy now; CLV = their expected revenue over the "
    "next 12 months (latest prediction); revenue so far = their purchases to date"
)


class RevenueAtRisk(BaseModel):
    customers: Annotated[int, Field(description="customers at risk or unhappy")]
    clv_12m: Annotated[float, Field(description="their summed 12-month CLV")]
    without_prediction: Annotated[int, Field(description="of them, customers with no CLV")]
    revenue: Annotated[float, Field(description="their purchases to date")]
    share_of_clv: Annotated[
        float | None, Field(description="their CLV over every customer's (None without CLV)")
    ]
    states: list[str]
    definition: str


def revenue_at_risk(db: Database, workspace_id: int) -> RevenueAtRisk:
    """The customers at risk or unhappy and the 12-month CLV and revenue they carry."""
    s = CustomerState
    mine = s.workspace_id == workspace_id
    at_risk = select(  # a range of the (workspace, health state) index
        func.count(), func.sum(s.clv_12m), func.count().filter(s.clv_12m.is_(None)),
        func.sum(s.revenue),
    ).where(mine, s.health_state.in_(AT_RISK_STATES))  # fmt: skip
    everyone = select(func.sum(s.clv_12m)).where(mine, s.clv_12m.is_not(None))  # the CLV index
    with db.session() as session:
        customers, clv, unknown, revenue = session.execute(at_risk).one()
        all_clv = session.scalar(everyone)
    clv, all_clv = float(clv or 0.0), float(all_clv or 0.0)
    return RevenueAtRisk(
        customers=int(customers or 0),
        clv_12m=round(clv, 2),
        without_prediction=int(unknown or 0),
        revenue=round(float(revenue or 0.0), 2),
        share_of_clv=round(clv / all_clv, 4) if all_clv > 0 else None,
        states=list(AT_RISK_STATES),
        definition=DEFINITION,
    )

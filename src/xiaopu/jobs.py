"""Every background job and schedule, declared in one place (the README lists them).

The registry imports the domains' job modules; they import nothing of it (the types a handler
is given live in xiaopu.queue), so it sits on top of them as the worker does.
"""

from __future__ import annotations

from dataclasses import dataclass

from xiaopu.campaigns import jobs as campaign_jobs
from xiaopu.commissions import jobs as commission_jobs
from xiaopu.idempotency import jobs as idempotency_jobs
from xiaopu.insights import jobs as insights_jobs
from xiaopu.ledger import jobs as ledger_jobs
from xiaopu.links import partitions
from xiaopu.matching import jobs as matching_jobs
from xiaopu.orders import jobs as order_jobs
from xiaopu.orders.payments import REFUND_JOB
from xiaopu.organisations import jobs as organisation_jobs
from xiaopu.payouts import jobs as payout_jobs

# Re-exported: the worker and the tests take the job types from here with the registry.
from xiaopu.queue import JobContext as JobContext
from xiaopu.queue import JobHandler as JobHandler
from xiaopu.settlements import jobs as settlement_jobs
from xiaopu.webhooks import jobs as webhook_jobs


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    cron: str
    handler: JobHandler
    description: str
    # The handler commits its own units of work through `JobContext.sessionmaker` (it calls an
    # outside provider between them), so the worker hands it a session outside any transaction
    # instead of wrapping it in one.
    own_transactions: bool = False


@dataclass(frozen=True, slots=True)
class Entrypoint:
    handler: JobHandler
    # As Schedule.own_transactions: the handler commits its own steps through
    # `JobContext.sessionmaker`, and the worker opens no transaction around it.
    own_transactions: bool = False


def entrypoints() -> dict[str, Entrypoint]:
    """Jobs queued by the code (one per change that needs background work)."""
    return {
        webhook_jobs.DELIVER_JOB: Entrypoint(webhook_jobs.deliver),
        # Claim, commit, ask the payment provider outside any transaction, record, commit.
        REFUND_JOB: Entrypoint(order_jobs.refund, own_transactions=True),
        # Claim and commit, then the CSV's chunks and `ready` in one transaction.
        commission_jobs.EXPORT_JOB: Entrypoint(commission_jobs.export, own_transactions=True),
        # Queued by campaigns.tick every few seconds of the minute while a campaign is live.
        campaign_jobs.REFRESH_JOB: Entrypoint(campaign_jobs.refresh),
    }


def schedules() -> list[Schedule]:
    """Jobs run on a timetable (cron syntax, UTC)."""
    return [
        Schedule(
            "idempotency.purge",
            "*/10 * * * *",
            idempotency_jobs.purge,
            "Delete Idempotency-Key records older than 24 hours.",
        ),
        Schedule(
            "links.partitions",
            "15 3 * * *",
            partitions.ensure_partitions,
            "Make the clicks table's monthly partitions for the coming months.",
        ),
        Schedule(
            "orders.expire",
            "* * * * *",
            order_jobs.expire,
            "Expire unpaid orders past `order_expiry_minutes` and put their stock back.",
        ),
        Schedule(
            "orders.complete",
            "* * * * *",
            order_jobs.complete,
            "Complete delivered supplier orders whose return window closed with no open return.",
        ),
        Schedule(
            payout_jobs.RUN_JOB,
            # Often, because a run is cheap when nothing waits and it is also what takes over
            # the claims of a worker that died (once `payout_claim_timeout_seconds` passed).
            "*/5 * * * *",
            payout_jobs.run,
            "Pay every requested withdrawal through the payout provider: claim a chunk and "
            "commit, ask the provider outside any transaction, record each outcome and commit; "
            "payouts a dead worker left claimed are looked up at the provider first.",
            own_transactions=True,
        ),
        Schedule(
            "settlements.close",
            "5 * * * *",
            settlement_jobs.close,
            "Close the latest ended settlement period (local days of `time_zone`) into each "
            "supplier's numbered statement and payout; a closed period is skipped at once.",
            own_transactions=True,
        ),
        Schedule(
            "organisations.close_months",
            "10 16 * * *",
            organisation_jobs.close_months,
            "Close every ended local month (of `time_zone`; 00:10 in Asia/Shanghai) with open "
            "overrides, one organisation-month per transaction: pending overrides become "
            "available if the month's activity rule held, or go back to the platform with the "
            "reason recorded. A closed month is skipped.",
            own_transactions=True,
        ),
        Schedule(
            "settlements.pay",
            "*/10 * * * *",
            settlement_jobs.pay,
            "Pay supplier payouts through the payout provider: claim, call, record; finish "
            "payouts a dead worker left processing.",
            own_transactions=True,
        ),
        Schedule(
            commission_jobs.PURGE_JOB,
            "23 * * * *",
            commission_jobs.purge,
            "Delete the CSV of statement exports past `statement_export_retention_hours` "
            "(1,000 exports a run) and mark them expired.",
        ),
        Schedule(
            insights_jobs.ROLLUP_JOB,
            "* * * * *",
            insights_jobs.run_rollup,
            "Fold the orders whose figures changed (logged by triggers) into the dashboards' "
            "daily rollups, 5,000 a run, and refresh the platform's today and yesterday; a full "
            "batch queues the next run at once.",
        ),
        Schedule(
            campaign_jobs.TICK_JOB,
            "* * * * *",
            campaign_jobs.tick,
            "Move campaigns by the clock (warm-up, `campaign.starting` an hour ahead, live, "
            "ended with unsold units back to stock, settled once every campaign order is "
            "final), note an exhausted boost budget once, refresh live and ended campaigns' "
            "results, and queue refreshes every 5 s of the minute while one is live.",
        ),
        Schedule(
            "ledger.reconcile",
            "7 * * * *",
            ledger_jobs.reconcile,
            "Check balance counters against ledger entries and every transaction's balance.",
        ),
        Schedule(
            matching_jobs.COMPUTE_JOB,
            # Nightly, after the local day (Asia/Shanghai by default) has ended: 02:40 there.
            "40 18 * * *",
            matching_jobs.compute,
            "Rewrite every shop's recommended products and every category and price band's "
            "recommended shops from the last 30 local days of orders and clicks, in one "
            "transaction.",
        ),
    ]

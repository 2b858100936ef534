"""The data contract: which tables csforecast reads, their columns, types and keys.

See docs/data-contract.md for the prose version. Types are logical: "string", "date", "float", "int", "bool".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

# the group of rows whose grouping attribute is null: an account with no segment (Source.table fills it in) or
# no CSM, a contract whose account is not in accounts
UNASSIGNED = "unassigned"

MONTHS_PER_YEAR = 12   # an amount per month (Column.per_month, a billing system's MRR) is read as this times it


def started(start_date, today: date | None = None):
    """Which contracts have started: ``start_date <= today``, on an Ibis date column or on a numpy array of days
    (then pass `today` in its unit).

    A contract that starts after today (a renewal or new business booked ahead; validation's `booked_ahead`)
    is not data yet: the data cannot end in the future (`features.snapshot.data_end`, the ARR metrics' default
    data end), and the renewal it continues is not known before it starts."""
    return start_date <= (date.today() if today is None else today)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = False
    doc: str = ""
    # a row without this (required) value is left out, with a warning (validation's `left_out`), not an error:
    # what such a row is and why leaving it out is right, in words
    left_out: str = ""
    # the values the column takes; one written another way (case, spaces and punctuation aside: "NPS", "Exec
    # Meeting", "Cross-Sell", "p1") is read as the level (parse.read_as; validation notes it, `spelled_levels`)
    levels: tuple[str, ...] = ()
    # names the source may write several ways ("Active Users", "active_users"), read in one spelling: lower case,
    # words joined by _ (parse.one_spelling; validation notes it, `respelled_names`), so that they are one name
    one_spelling: bool = False
    # values that name a group the figures are broken down by (a segment, a region): one written several ways ("SMB",
    # "Smb", "smb"; case, spaces and punctuation aside) is one group, read in the spelling most rows have
    # (Source.group_spellings; validation notes it, `spelled_groups`)
    one_group: bool = False
    # the name of the same amount written per month (a billing system's MRR): a source without this column but
    # with that one (as named, spelled another way, or mapped: `column_map.contracts.mrr`) is read as
    # MONTHS_PER_YEAR times it, with a note (data.sources.TableReading.per_month)
    per_month: str | None = None
    # a required column: why a row needs the value and what to export when the source has none, in words (said
    # by validation's `null` error)
    when_missing: str = ""


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    required: bool = False
    key: str | None = None          # unique key column, if any
    date_column: str | None = None  # the column that says when a row happened (point-in-time cut)
    row_label: tuple[str, ...] = field(default_factory=tuple)  # columns that name a row in messages
    # rows dated after the as-of date are bookings, not errors (validation's `booked_ahead` warning, not
    # `future_date`): how the pipeline reads them, in words; "" = such a row is an error
    booked_ahead: str = ""
    # what goes without this (optional) table: said by `validate` when it is missing or empty
    feeds: str = ""                                   # in words
    features: tuple[str, ...] = ()                    # snapshot columns ({metric} = each usage metric)
    health: tuple[str, ...] = ()                      # health components that take inputs from it

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def names_read(self) -> list[str]:
        """The names a column_map entry may give: the columns, and the per-month names some of them are read from."""
        return self.column_names + [c.per_month for c in self.columns if c.per_month]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


# snapshot columns computed from usage; {metric} stands for each usage metric's name (as a slug)
USAGE_FEATURES = tuple(f"{{metric}}_{suffix}" for suffix in (
    "7d", "30d", "prev30d", "90d", "trend_30d", "slope_90d", "6m", "12m", "ewm3m", "ewm6m", "lifetime")) + (
    "seat_utilisation", "seat_utilisation_7d", "seat_utilisation_90d", "seat_utilisation_12m",
    "seat_utilisation_ewm3m", "seat_utilisation_ewm6m", "seat_utilisation_lifetime", "key_feature_breadth",
    "days_since_login")

PRIORITIES = ("P1", "P2", "P3", "P4")
SURVEY_KINDS = ("nps", "csat", "ces")
TOUCH_KINDS = ("meeting", "email", "call", "qbr", "exec_meeting")
ARMS = ("treatment", "control", "none")
CALL_CATEGORIES = ("commit", "most_likely", "at_risk", "churn")  # most to least confident in the renewal
SCORE_RANGES = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}
SENTIMENT_WORDS = {"red": 1.0, "yellow": 3.0, "green": 5.0}                  # words on the 1-5 scale
SENTIMENT_LEVELS = (*SENTIMENT_WORDS, "1", "2", "3", "4", "5")
OPPORTUNITY_KINDS = ("upsell", "cross_sell")
OPPORTUNITY_STAGES = ("emailed", "discussion", "contract_sent", "verbal", "signed", "lost")   # in pipeline order

C = Column
TABLES: dict[str, TableSpec] = {t.name: t for t in [
    TableSpec("accounts", (
        C("account_id", "string"), C("name", "string", True),
        C("segment", "string", True, f"null = {UNASSIGNED!r}, a segment of its own", one_group=True),
        C("industry", "string", True, one_group=True), C("region", "string", True, one_group=True),
        C("csm_id", "string", True),
        C("created_at", "date", True, "null = the start of the account's first contract"),
    ), required=True, key="account_id", date_column="created_at", row_label=("account_id",)),
    TableSpec("contracts", (
        C("contract_id", "string"), C("account_id", "string"), C("start_date", "date"), C("end_date", "date",
          doc="exclusive: the renewal date; the contract covers start_date <= day < end_date",
          when_missing="a renewal decision falls at a contract's end, so every contract needs one: for an "
                       "open-ended contract (evergreen, auto-renewing or month-to-month) export the end of its "
                       "current term (its next renewal or notice date), and its past terms as contracts of their "
                       "own (renewed_by linking them), or a monthly plan as one-month contracts"),
        C("arr", "float", per_month="mrr"), C("seats", "float", True, "null = unknown: the seat features go missing"),
        C("auto_renew", "bool", True),
        C("renewed_by", "string", True,
          "null = no successor; when no contract has one, the successors are inferred from the dates"), C("churn_reason", "string", True),
    ), required=True, key="contract_id", date_column="start_date", row_label=("contract_id",),
        booked_ahead="renewals or new business booked ahead: read as not started yet, so the renewal "
                     "each continues stays pending until it starts"),
    TableSpec("usage", (
        C("account_id", "string"), C("date", "date"), C("metric", "string", one_spelling=True),
        C("value", "float", left_out="a metric not recorded that day, e.g. a blank cell in a daily export: as a day "
                                     "without a row, it adds nothing to the per-day sums the features are built on"),
    ), date_column="date", row_label=("account_id", "date", "metric"),
        feeds="usage features (per metric: 7/30/90-day and prior-30-day means, trend, 90-day slope, 6/12-month, "
              "weighted and lifetime means), seat utilisation, key-feature breadth, days since login",
        features=USAGE_FEATURES, health=("deployment", "adoption")),
    TableSpec("tickets", (
        C("ticket_id", "string"), C("account_id", "string"), C("opened_at", "date"),
        C("closed_at", "date", True, "null = still open: counted in open_tickets, no resolution time"),
        C("priority", "string", levels=PRIORITIES), C("csat", "float", True),
    ), key="ticket_id", date_column="opened_at", row_label=("ticket_id",),
        feeds="support features (tickets in 30/90/365 days, P1/P2 counts, open tickets, resolution time, ticket "
              "CSAT, per 100 seats)",
        features=("tickets_30d", "tickets_90d", "tickets_p1_30d", "tickets_p1_90d", "tickets_p2_90d", "tickets_365d",
                  "open_tickets", "mean_resolution_days_180d", "ticket_csat_180d", "ticket_csat_count_180d",
                  "tickets_90d_per_100_seats", "tickets_p1_90d_per_100_seats", "tickets_365d_per_100_seats",
                  "open_tickets_per_100_seats"),
        health=("support",)),
    TableSpec("surveys", (
        C("account_id", "string"), C("responded_at", "date"), C("kind", "string", levels=SURVEY_KINDS),
        C("score", "float", left_out="a response that skipped the score question: no score to read"),
        C("respondent_role", "string", True),
    ), date_column="responded_at", row_label=("account_id", "responded_at", "kind"),
        feeds="voice-of-customer features (latest and mean NPS, account NPS, latest CSAT, response counts, days "
              "since the last NPS, respondent roles)",
        features=("nps_latest", "days_since_nps", "nps_mean_365d", "nps_count_365d", "account_nps_365d", "csat_latest",
                  "csat_count_365d", "respondent_roles_365d"),
        health=("nps", "support", "engagement")),
    TableSpec("touches", (
        C("account_id", "string"), C("date", "date"), C("kind", "string", levels=TOUCH_KINDS),
        C("csm_id", "string", True),
    ), date_column="date", row_label=("account_id", "date", "kind"),
        feeds="engagement features (CSM touches in 90 days and the prior 90, days since the last touch and "
              "executive meeting, executive meetings and QBRs in 12 months)",
        features=("touches_90d", "touches_prev90d", "days_since_touch", "exec_meetings_365d", "days_since_exec_meeting",
                  "qbrs_365d"),
        health=("engagement",)),
    TableSpec("stakeholder_events", (
        C("account_id", "string"), C("date", "date"), C("kind", "string"),
    ), date_column="date", row_label=("account_id", "date", "kind"),
        feeds="stakeholder features (days since the champion left or another stakeholder change, champion "
              "departures in 12 months)",
        features=("days_since_champion_left", "days_since_stakeholder_change", "champion_left_365d"),
        health=("engagement",)),
    TableSpec("interventions", (
        C("account_id", "string"), C("date", "date"), C("playbook", "string"), C("arm", "string", levels=ARMS),
    ), date_column="date", row_label=("account_id", "date", "playbook"),
        feeds="the playbook effect analysis (csforecast effect); no features or health components"),
    # CSM renewal calls (issue 16): what a CSM expects of a renewal; read by the blend family and the scenarios
    TableSpec("forecast_calls", (
        C("account_id", "string"), C("contract_id", "string", doc="the renewing contract"),
        C("called_at", "date"), C("csm_id", "string"),
        C("category", "string", doc="commit | most_likely | at_risk | churn", levels=CALL_CATEGORIES),
        C("amount", "float", True, "the CSM's expected renewal ARR"), C("note", "string", True),
    ), date_column="called_at", row_label=("account_id", "contract_id", "called_at"),
        feeds="the blend of the churn model with CSM calls (family blend), the call scenarios (commit, most "
              "likely, best case) and the disagreements list; no features or health components"),
    # issue 17, the scorecard people can own: the CSM's own read of the account (Experience pillar) and the value
    # the customer has realised against its success plan (Outcomes pillar), as CS platforms record them
    TableSpec("csm_sentiment", (
        C("account_id", "string"), C("recorded_at", "date"), C("csm_id", "string", True),
        C("sentiment", "string", doc="red | yellow | green, or 1-5 (5 = very positive)", levels=SENTIMENT_LEVELS),
    ), date_column="recorded_at", row_label=("account_id", "recorded_at"),
        feeds="CSM sentiment features (the latest sentiment on 1-5, days since it was recorded)",
        features=("csm_sentiment", "days_since_sentiment"), health=("sentiment",)),
    TableSpec("success_plans", (
        C("account_id", "string"), C("recorded_at", "date", doc="the day the plan's status was reviewed"),
        C("goals_total", "int", doc="objectives in the account's success plan"),
        C("goals_met", "int", doc="objectives the customer has achieved"),
        C("roi", "float", True, "documented ROI multiple (value realised / cost), when the review measured one"),
    ), date_column="recorded_at", row_label=("account_id", "recorded_at"),
        feeds="value/ROI features (share of success-plan goals met and ROI at the latest review, days since it)",
        features=("value_realised", "roi_latest", "days_since_value_review"), health=("value",)),
    # issue 17: the expansion pipeline (csforecast pipeline); one row per opportunity, as it stands now
    TableSpec("opportunities", (
        C("opportunity_id", "string"), C("account_id", "string"), C("kind", "string", doc="upsell | cross_sell", levels=OPPORTUNITY_KINDS),
        C("stage", "string", doc="emailed | discussion | contract_sent | verbal | signed | lost",
          levels=OPPORTUNITY_STAGES),
        C("amount", "float", doc="ARR the opportunity would add"), C("created_at", "date"),
        C("expected_close", "date", True), C("closed_at", "date", True),
        C("won", "bool", True, "null while open; true when signed, false when lost"),
    ), key="opportunity_id", date_column="created_at", row_label=("opportunity_id",),
        feeds="the expansion pipeline (csforecast pipeline: weighted pipeline, stage probabilities); no features "
              "or health components"),
    TableSpec("opportunity_history", (
        C("opportunity_id", "string"), C("stage", "string", levels=OPPORTUNITY_STAGES), C("entered_at", "date"),
    ), date_column="entered_at", row_label=("opportunity_id", "stage"),
        feeds="learned stage probabilities and the pipeline back-test (the stage of each opportunity on a past "
              "date); the default stage probabilities still weight the pipeline"),
]}

def health_sources() -> dict[str, tuple[str, ...]]:
    """Health component -> the optional tables that feed it (from each table's `health`)."""
    out: dict[str, tuple[str, ...]] = {}
    for t in TABLES.values():
        for comp in t.health:
            out[comp] = out.get(comp, ()) + (t.name,)
    return out

"""One typed settings object, read from the environment (prefix ``FRONTDESK_``) and an optional ``.env``.

Every part of Frontdesk reads its configuration from here and nowhere else, so that `frontdesk --help`,
the README and `.env.example` can describe one set of names.  Secrets are ``SecretStr`` so that they
never appear in a repr or a log line.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from frontdesk.core.durations import DurationError, parse_offsets

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# The sandbox's documented credentials: the emulator accepts exactly these, and `frontdesk run`
# uses them when no real X keys are configured.
SANDBOX_X_CONSUMER_KEY = "sandbox-consumer-key"
SANDBOX_X_CONSUMER_SECRET = "sandbox-consumer-secret"
SANDBOX_X_ACCESS_TOKEN = "sandbox-access-token"
SANDBOX_X_ACCESS_TOKEN_SECRET = "sandbox-access-token-secret"
SANDBOX_X_BEARER_TOKEN = "sandbox-bearer-token"
SANDBOX_TELEGRAM_TOKEN = "123456:sandbox-telegram-token"
# (telegram-channel) the agents' group `frontdesk run` registers in the sandbox when none is configured.
SANDBOX_TELEGRAM_AGENTS_CHAT = -1001000000001

# The secret key's public development value: fine against the sandbox, where nothing real is at stake;
# with real accounts it would let anyone sign a desk session or API token as any agent.
DEVELOPMENT_SECRET_KEY = "dev-only-change-me"
MIN_SECRET_KEY_BYTES = 32


class InsecureSettings(ValueError):
    """A setting that would leave a deployment with real accounts open to anyone (see `check_secrets`)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FRONTDESK_", env_file=".env", env_file_encoding="utf-8", extra="ignore",
        # An empty variable means "not set" (deploy): .env.example and the compose file list every
        # setting with blank secrets, and a blank FRONTDESK_X_CONSUMER_KEY must not count as a key.
        env_ignore_empty=True,
    )

    # --- where state lives -------------------------------------------------------------------
    var_dir: Path = Field(default=PROJECT_ROOT / "var", description="Runtime state: SQLite file, models, logs.")
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL. Empty means the embedded SQLite file var/frontdesk.db. "
        "PostgreSQL: postgresql+asyncpg://user@host:5432/db",
    )
    content_dir: Path = Field(
        default=PROJECT_ROOT / "content",
        description="The brand's content: FAQ, events, what the bot says, word lists (docs/content.md).",
    )
    content_reload_s: float = Field(
        default=5.0, ge=0,
        description="Look for changed content files this often (seconds) and reload them without a restart; "
        "0: only on SIGHUP.",
    )
    taxonomy_path: Path | None = Field(
        default=None,
        description="Intent -> category, queue and priority: what the router escalates where, the intents the "
        "desk offers for corrections. Empty: taxonomy.yml in the content directory.",
    )

    # --- HTTP -------------------------------------------------------------------------------
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    sandbox_port: int = 8081
    # (issue 17) limits and exposure of every HTTP app we serve (desk/web_security.py).
    http_max_body_bytes: int = Field(
        default=1024 * 1024, ge=0, description="Largest request body the desk and its API accept (413 above)."
    )
    webhook_max_body_bytes: int = Field(
        default=5 * 1024 * 1024, ge=0, description="Largest request body /webhooks/* accepts (413 above)."
    )
    trusted_hosts: str = Field(
        default="",
        description="Comma-separated Host names the HTTP apps answer for, e.g. `desk.example.com,*.example.com` "
        "(IP addresses, as probes and scrapers send, always pass). Empty: any host (warned outside sandbox mode).",
    )
    public_docs: bool | None = Field(
        default=None, description="Serve /docs, /redoc and /openapi.json. Empty: only in sandbox mode."
    )
    public_metrics: bool | None = Field(
        default=None, description="Serve /metrics on the HTTP port. Empty: only in sandbox mode."
    )
    secret_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SECRET_KEY),
        description="Signs desk session cookies and API tokens. Required (32+ bytes, random) whenever real "
        "X or Telegram credentials are set: e.g. `openssl rand -hex 32`.",
    )

    # --- NLU (Rasa runs as its own service, from its own Python 3.10 virtualenv) --------------
    nlu_url: str = Field(default="", description="A running Rasa server. Empty: `frontdesk run` starts one.")
    nlu_port: int = 5005
    nlu_auth_token: SecretStr | None = Field(
        default=None,
        description="The token Rasa's HTTP API requires (`rasa run --auth-token`) and the client sends. Empty: "
        "generated on first use into var/nlu-auth-token (0600). Set it, the same value, wherever Rasa runs "
        "in another container or on another host.",
    )
    nlu_timeout_s: float = 5.0
    nlu_confidence_threshold: float = Field(
        default=0.9, ge=0.0, le=1.0,
        description="Act on the NLU's category only at this confidence (its intents' summed scores); "
        "else ask once. Chosen with `frontdesk eval decisions` on the dev sets (docs/bot.md).",
    )
    nlu_margin_threshold: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="...and only when the category leads the next one by this much; else ask once.",
    )
    rasa_venv: Path = Field(default=PROJECT_ROOT / "var" / "rasa-venv")
    rasa_python: str = Field(default="", description="Python 3.10 for the Rasa virtualenv; found via pyenv if empty.")

    # --- NLU service (nlu/training.py, nlu/serving.py, nlu/client.py): the Rasa project, models and logs --
    nlu_project_dir: Path = Field(
        default=PROJECT_ROOT / "nlu" / "project",
        description="The Rasa project (config.yml, domain.yml, data/, addons/) that `frontdesk nlu train` trains.",
    )
    nlu_corrections_path: Path = Field(
        default=PROJECT_ROOT / "nlu" / "corrections.yml",
        description="Agents' corrections exported as Rasa NLU data; trained on too when the file exists.",
    )
    nlu_retries: int = Field(default=2, ge=0, description="Extra attempts on connection errors and 5xx.")
    nlu_startup_timeout_s: float = Field(
        default=300.0, description="How long `frontdesk nlu serve` waits for Rasa to load its model."
    )

    @property
    def nlu_models_dir(self) -> Path:
        return self.var_dir / "models"

    @property
    def logs_dir(self) -> Path:
        return self.var_dir / "logs"

    @property
    def effective_taxonomy_path(self) -> Path:
        return self.taxonomy_path or self.content_dir / "taxonomy.yml"

    # --- X ------------------------------------------------------------------------------------
    x_api_base: str = Field(default="", description="Redirect the X API (e.g. to the sandbox emulator).")
    x_consumer_key: SecretStr | None = None
    x_consumer_secret: SecretStr | None = None
    x_access_token: SecretStr | None = None
    x_access_token_secret: SecretStr | None = None
    x_bearer_token: SecretStr | None = None
    x_mentions_poll_s: float = 0.0  # 0: derived from the rate limit the API reports
    x_dms_poll_s: float = 0.0
    # Listening (docs/listening.md): one recent search per rule per poll.  X bills the posts returned, not the
    # requests, so polling more often costs no more per post; 60 s keeps 10 rules at 150 of the 300 searches a
    # user may make per 15 minutes and a finding on the desk within a minute.  0: no listening.
    x_listening_poll_s: float = Field(
        default=60.0, ge=0, description="Seconds between listening polls (X recent search per rule); 0: off."
    )
    x_webhook_enabled: bool = False

    # --- X channel (bot/channels/x) -------------------------------------------------------------
    x_poll_floor_s: float = Field(
        default=1.0, description="Never poll an X endpoint more often than this, however generous its rate limit."
    )
    x_backoff_max_s: float = Field(default=60.0, description="Cap of the backoff after X 5xx or network errors.")
    x_backfill_s: float = Field(
        default=3600.0,
        description="On the very first poll (no cursor stored yet), ingest mentions and DMs at most this old.",
    )
    x_webhook_backstop_poll_s: float = Field(
        default=300.0,
        description="With webhooks on, still poll this often to catch deliveries X dropped (0: never).",
    )
    # What X bills (docs/x-channel.md, "What it costs"): reads per item returned, so page sizes are money.
    x_dms_page_size: int = Field(
        default=100, ge=1, le=100,
        description="Events per GET /2/dm_events page. X bills each event a poll returns ($0.010), new or not.",
    )
    x_owned_reads: bool = Field(
        default=False,
        description="Read the brand's own mentions and posts with its user token instead of the bearer token: "
        "X's owned-read price ($0.001 a post, not $0.005) if the brand's account owns the developer app.",
    )
    x_dm_overlap_s: float = Field(
        default=120.0,
        ge=0.0,
        description="Each DM poll reads again the events sent this many seconds before now, so a DM X lists "
        "late (after newer ones) is still ingested; stored ones are skipped by event id (0: no overlap).",
    )

    # --- Announcements (docs/outbound.md): the pace, below the platforms' caps -----------------------
    announce_x_dms_per_window: int = Field(
        default=10, ge=1,
        description="Announcement DMs per X window (X allows 15 DM sends per 15 minutes); the rest of the "
        "window is kept for agents' and the bot's replies.",
    )
    announce_x_window_s: float = Field(default=900.0, gt=0, description="X's short DM window, seconds.")
    announce_x_dms_per_day: int = Field(
        default=960, ge=1, description="Announcement DMs per X day window (X allows 1,440 per 24 hours).",
    )
    announce_x_day_s: float = Field(default=86_400.0, gt=0, description="X's long DM window, seconds.")
    announce_telegram_per_s: int = Field(
        default=20, ge=1, description="Announcement messages per second on Telegram (its bulk limit is ~30).",
    )
    announce_tick_s: float = Field(
        default=1.0, gt=0, description="How often the worker's pacer releases the next announcement deliveries.",
    )

    # --- Telegram -----------------------------------------------------------------------------
    telegram_token: SecretStr | None = None
    telegram_api_base: str = Field(default="", description="Redirect the Bot API (e.g. to the sandbox).")
    telegram_agents_chat: int | None = None
    telegram_webhook_secret: SecretStr | None = None
    # (telegram-channel) how updates arrive and how the agents' pager behaves; see docs/telegram.md.
    telegram_webhook_url: str = Field(
        default="",
        description="Public https URL that reaches /webhooks/telegram. Empty: long polling (the default).",
    )
    telegram_poll_timeout_s: int = Field(default=25, description="Long-poll timeout of getUpdates, seconds.")
    telegram_pager_poll_s: float = Field(
        default=2.0, description="How often the agents' pager looks for new escalations in the store."
    )

    # --- desk (the agents' web app) -----------------------------------------------------------
    desk_session_max_age_s: int = Field(default=12 * 3600, description="How long a desk sign-in lasts.")
    desk_token_ttl_s: int = Field(default=12 * 3600, description="Lifetime of a /api/token bearer token.")
    # (issue 17) login throttling, counted in the store so that every desk process shares it.
    desk_login_max_failures_per_account: int = Field(
        default=5, ge=1, description="Failed sign-ins per account within the window before it is locked (429)."
    )
    desk_login_max_failures_per_address: int = Field(
        default=20, ge=1, description="Failed sign-ins from one client address (IPv6: per /64) before it is locked."
    )
    desk_login_window_s: int = Field(
        default=15 * 60, ge=1, description="The throttle's window: failures older than this no longer count."
    )
    desk_cookie_secure: bool | None = Field(
        default=None,
        description="Send the desk session cookie over HTTPS only. Empty: true with real X/Telegram credentials, "
        "false in sandbox mode; set false only to try real accounts over plain HTTP.",
    )
    desk_live_poll_s: float = Field(default=1.0, description="How often the live feed looks for changes.")

    # --- automatic assignment (storage/actions/assignment.py, bot/assigner.py, docs/desk.md "Assignment") ---
    assign_online_window_s: float = Field(
        default=120.0, gt=0,
        description="An agent counts as online for automatic assignment when their desk live feed or the "
        "pager saw them within this many seconds.",
    )
    assign_sweep_s: float = Field(
        default=15.0, gt=0,
        description="How often each worker looks for queued tickets in auto-assign queues (ones that waited "
        "while nobody was online); a new escalation is assigned at once.",
    )

    # --- the bot's manners ---------------------------------------------------------------------
    business_hours: str = Field(
        default="24x7",
        description="When agents work, for the bot's 'back at' note and the SLA clocks: '24x7', or days and hours "
        "with an optional IANA zone, e.g. 'Mon-Fri 09:00-17:00; Sat 10:00-14:00 Europe/London' "
        "(frontdesk/core/business_hours.py).",
    )
    business_timezone: str = Field(default="UTC", description="The zone of FRONTDESK_BUSINESS_HOURS when it names none.")
    sla_sweep_s: float = Field(
        default=30.0, gt=0, description="How often each router process looks for SLA warnings and breaches."
    )

    # --- satisfaction survey (CSAT; storage/actions/csat.py, docs/desk.md "CSAT") -------------------
    csat_enabled: bool = Field(default=True, description="Ask the customer \"How did we do? 1-5\" when a ticket is resolved.")
    csat_window_days: int = Field(
        default=30, ge=0, description="Never ask the same contact again within this many days; 0: ask after every ticket."
    )
    csat_after_bot_only: bool = Field(
        default=False, description="Also ask after a ticket no agent ever held or replied to."
    )
    csat_answer_hours: int = Field(
        default=72, ge=1, le=24 * 30,
        description="How long the customer's next message is read as the answer; after that the question lapses.",
    )

    # --- event reminders (issue 22; bot/event_reminders.py, docs/outbound.md) --------------------
    event_reminders: str = Field(
        default="24h,1h",
        description="When registrants are reminded before an event, for events.yml entries without their own "
        "`reminders:` (comma-separated durations such as 24h,1h,30m); empty: no reminders by default.",
    )
    event_reminder_interval_s: float = Field(
        default=30.0, gt=0,
        description="How often a worker looks for due event reminders and changed events (seconds).",
    )

    # --- personal data (issue 17; storage/actions/privacy.py, docs/privacy.md) ---------------------
    retention_days: int = Field(
        default=0, ge=0,
        description="Erase what was finished (closed tickets, rounds the bot handled alone) more than this many "
        "days ago, and then contacts with nothing newer; 0 keeps everything.",
    )
    retention_interval_s: float = Field(
        default=3600.0, gt=0, description="How often each worker applies FRONTDESK_RETENTION_DAYS."
    )

    # --- spike alerts (issue 22; bot/spikes.py, docs/incidents.md) ----------------------------------
    spike_window_s: int = Field(
        default=15 * 60, ge=0,
        description="Spike alerts compare the messages of the current window of this many seconds (per intent, "
        "per category) with the windows before it; 0 turns spike alerts off.",
    )
    spike_baseline_windows: int = Field(
        default=8, ge=1, le=96, description="How many earlier windows make the baseline (mean and stdev)."
    )
    spike_stdevs: float = Field(
        default=3.0, ge=0, description="A window is a spike above baseline mean + this many standard deviations."
    )
    spike_min_count: int = Field(
        default=10, ge=1, description="...and only with at least this many messages (a quiet brand's 3 are no spike)."
    )
    spike_quiet_s: int = Field(
        default=2 * 3600, ge=0, description="After an alert, the same key raises no other for this many seconds."
    )
    spike_check_s: float = Field(default=60.0, gt=0, description="How often the router's process looks for spikes.")
    desk_public_url: str = Field(
        default="", description="The desk's address as agents reach it (e.g. https://desk.example.com), for the "
        "links the pager posts; empty: the pager names the path only.",
    )

    # --- deployment & observability (deploy) ---------------------------------------------------
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR. Message bodies only at DEBUG.")
    log_json: bool = Field(default=False, description="One JSON object per log line (set true in containers).")
    metrics_port: int = Field(
        default=9100,
        description="/metrics and /healthz here: workers, and desks unless the HTTP port serves /metrics; 0: off.",
    )
    leader_lease_s: float = Field(
        default=15.0, description="Poller leadership lease: a dead leader's successor starts polling within this."
    )

    # --- the bot (bot/worker.py, frontdesk/app/supervisor.py) ----------------------------------------------------
    x_brand_user_id: str = Field(
        default="", description="The brand's numeric X user id for DM links; empty: looked up at start-up."
    )
    bot_concurrency: int = Field(default=8, ge=1, description="Conversations the router worker handles at once.")
    # --- scale (issue 8) ---
    worker_lease_s: float = Field(
        default=60.0,
        description="How long a worker holds a conversation or outbox row it works on; a killed worker's "
        "work is taken over by another after this.  Renewed at half-time while the work goes on.",
    )

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.var_dir / 'frontdesk.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def sandbox_mode(self) -> bool:
        """No real account is configured: X and Telegram credentials are absent or the sandbox's public ones."""
        x_keys = (self.x_consumer_key, self.x_consumer_secret, self.x_access_token, self.x_access_token_secret,
                  self.x_bearer_token)
        sandbox_x = {SANDBOX_X_CONSUMER_KEY, SANDBOX_X_CONSUMER_SECRET, SANDBOX_X_ACCESS_TOKEN,
                     SANDBOX_X_ACCESS_TOKEN_SECRET, SANDBOX_X_BEARER_TOKEN}
        real_x = any(k is not None and k.get_secret_value() not in sandbox_x for k in x_keys)
        real_telegram = (
            self.telegram_token is not None and self.telegram_token.get_secret_value() != SANDBOX_TELEGRAM_TOKEN
        )
        return not (real_x or real_telegram)

    @field_validator("event_reminders")
    @classmethod
    def _reminders_parse(cls, value: str) -> str:
        try:
            parse_offsets(value)
        except DurationError as exc:
            raise ValueError(f"FRONTDESK_EVENT_REMINDERS: {exc}") from None
        return value

    @property
    def event_reminder_offsets(self) -> tuple[int, ...]:
        """FRONTDESK_EVENT_REMINDERS in seconds, the longest first."""
        return parse_offsets(self.event_reminders)

    def check_secrets(self) -> None:
        """Refuse (InsecureSettings) a secret key anyone could know while real accounts are configured.

        Every process that serves or acts for a real account (`run`, `desk`, `worker`) calls this first.
        """
        if self.sandbox_mode:
            return
        key = self.secret_key.get_secret_value()
        if key == DEVELOPMENT_SECRET_KEY or len(key.encode()) < MIN_SECRET_KEY_BYTES:
            problem = "is not set" if key == DEVELOPMENT_SECRET_KEY else "is shorter than 32 bytes"
            raise InsecureSettings(
                f"FRONTDESK_SECRET_KEY {problem}, and real X or Telegram credentials are configured: anyone "
                "could sign a desk session as any agent. Set FRONTDESK_SECRET_KEY to a random value of at "
                "least 32 bytes (e.g. `openssl rand -hex 32`), the same for every desk and worker process."
            )

    @property
    def effective_desk_cookie_secure(self) -> bool:
        return (not self.sandbox_mode) if self.desk_cookie_secure is None else self.desk_cookie_secure

    @property
    def effective_public_docs(self) -> bool:
        return self.sandbox_mode if self.public_docs is None else self.public_docs

    @property
    def effective_public_metrics(self) -> bool:
        return self.sandbox_mode if self.public_metrics is None else self.public_metrics

    @property
    def trusted_host_names(self) -> list[str]:
        """The Host names to answer for; ["*"] (any) when none is configured."""
        names = [name.strip().lower() for name in self.trusted_hosts.split(",") if name.strip()]
        return names or ["*"]

    @property
    def has_x_credentials(self) -> bool:
        return all(
            s is not None
            for s in (self.x_consumer_key, self.x_consumer_secret, self.x_access_token, self.x_access_token_secret)
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

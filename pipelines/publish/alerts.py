"""After a night: each new task pushed to the person responsible for its cell (定点、定人、定责).

Messages, from a finished run's folder (``run.json``, ``report.csv``, ``supervisors/tasks.json``):

* one per **supervisor** with new tasks: how many, the first ``top_tasks`` with their
  Beijing time and place (county, cell, WGS84 position), and the link (or path) to their page;
* one per **county** with suspected straw burning, to its official: the day's counts,
  against the previous day, with the previous day's verification, and the report's link;
* one to the **operator** when the night's fire data was missing or empty ("no data" is
  not "no fires").

Chinese first, English second. Channels, each used when configured (``[alerts]``):
WeCom (企业微信) and DingTalk (钉钉) group robots (a JSON ``text`` message posted to the
robot's webhook URL, @-mentioning the recipient's mobile number when the contacts table
gives one; DingTalk's signed robots get ``timestamp`` and ``sign`` = Base64 of
HMAC-SHA256 of ``"<ms>\\n<secret>"``), and mail over SMTP to the recipient's address.
Webhook URLs, the DingTalk secret and the SMTP login come only from environment
variables (their names are configured), never from ``config.toml``.

A message is sent once per day, recipient and channel: a sent-log
(``OUT/state/alerts/sent-<D>.jsonl``, appended under a lock as each send succeeds)
makes sending again (a rerun of the night, ``gridwatch alerts``) skip what went out.
Each send is tried ``1 + retries`` times with exponential backoff, robots are kept
under ``per_minute`` messages a minute (WeCom and DingTalk allow 20), and every
attempt's outcome is recorded in the run's ``run.json`` under ``alerts``. A channel
that fails is recorded and never fails the night.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import smtplib
import sys
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TextIO

from pipelines.core.exceptions import AlertError
from pipelines.core.outputs import shared_lock, write_atomic
from pipelines.core.settings import AlertsConfig, Config
from pipelines.field.marks import TASK_INDEX

log = logging.getLogger(__name__)

WECOM_MAX_BYTES = 2048  # a WeCom robot's text content, UTF-8
ROLES = ("supervisor", "county", "operator")
CONTACT_COLUMNS = ("name", "role", "county_code", "email", "mobile")


@dataclass(frozen=True)
class Contact:
    name: str
    role: str  # supervisor, county or operator
    county_code: str = ""
    email: str = ""
    mobile: str = ""


@dataclass(frozen=True)
class Message:
    kind: str  # supervisor, county or operator
    recipient: str  # who it is for (a supervisor's name, a county's name, the operator)
    subject: str
    text: str  # Chinese first, then English
    mobile: str = ""
    email: str = ""


@dataclass
class SendRecord:
    """One message on one channel, as run.json keeps it."""

    kind: str
    recipient: str
    channel: str
    status: str  # sent, failed, already_sent
    attempts: int = 0
    error: str = ""
    time_utc: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))


# ------------------------------------------------------------------ messages


def read_contacts(path: Path) -> list[Contact]:
    """A contacts table (CSV, UTF-8): ``name, role, county_code, email, mobile``; role supervisor, county or operator."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AlertError(f"[alerts] contacts: {path}: cannot read: {exc}") from None
    if rows and not {"name", "role"} <= set(rows[0]):
        raise AlertError(f"[alerts] contacts: {path}: expected the columns {', '.join(CONTACT_COLUMNS)}")
    contacts = []
    for i, row in enumerate(rows, start=2):
        role = (row.get("role") or "").strip()
        if role not in ROLES:
            raise AlertError(f"[alerts] contacts: {path}:{i} [role] {role!r}: expected one of {', '.join(ROLES)}")
        contacts.append(Contact(**{c: (row.get(c) or "").strip() for c in CONTACT_COLUMNS}))
    return contacts


def build_messages(alerts: AlertsConfig, folder: Path, contacts: list[Contact] | None = None) -> list[Message]:
    """The messages of the finished run in ``folder`` (``OUT/D``), in the order they are sent: operator, supervisors, counties."""
    try:
        manifest = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AlertError(f"{folder}: not a finished run ({exc})") from None
    day = manifest["date"]
    people = _task_index(folder)
    by_name = {(c.role, c.name): c for c in contacts or []}
    by_county = {c.county_code: c for c in contacts or [] if c.role == "county"}
    operators = [c for c in contacts or [] if c.role == "operator"] or [Contact("值班员 operator", "operator")]
    messages = [_operator_message(day, problem, person) for problem in _missing_data(manifest) for person in operators][:len(operators)]
    new_per_county: dict[str, int] = {}
    for name, person in sorted(people.items()):
        new = [t for t in person["tasks"] if t.get("new")]
        if not new:
            continue
        cells = {c["cell_id"]: c for c in person["cells"]}
        for county in {cells.get(t["cell_id"], {}).get("county_code", "") for t in new}:
            new_per_county[county] = new_per_county.get(county, 0) + 1
        contact = by_name.get(("supervisor", name), Contact(name, "supervisor"))
        messages.append(_supervisor_message(alerts, folder, day, name, person, new, cells, contact))
    for county in _county_rows(folder):
        contact = by_county.get(county["code"], Contact(f"{county['name']}负责人", "county", county["code"]))
        messages.append(_county_message(alerts, folder, day, county, new_per_county.get(county["code"], 0), contact))
    return messages


def _task_index(folder: Path) -> dict[str, Any]:
    path = folder / TASK_INDEX
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))["supervisors"]
    except (OSError, ValueError, KeyError) as exc:
        raise AlertError(f"{path}: cannot read the run's task list: {exc}") from None


def _link(alerts: AlertsConfig, folder: Path, relative: str) -> str:
    if alerts.base_url:
        return urllib.parse.urljoin(alerts.base_url.rstrip("/") + "/", f"{folder.name}/{relative}")
    return str((folder / relative).resolve())


def _place(task: dict[str, Any], cells: dict[str, dict[str, str]]) -> str:
    cell = cells.get(task["cell_id"], {})
    county, name = cell.get("county_name", ""), cell.get("cell_name") or task["cell_id"]
    where = name if name.startswith(county) else f"{county}{name}"  # the sample's cell names begin with their county
    if task.get("lon") is not None and task.get("lat") is not None:
        where += f" ({task['lat']:.5f}N, {task['lon']:.5f}E)"
    return where


def _supervisor_message(alerts: AlertsConfig, folder: Path, day: str, name: str, person: dict[str, Any], new: list[dict[str, Any]],
                        cells: dict[str, dict[str, str]], contact: Contact) -> Message:
    link = _link(alerts, folder, person["page"])
    total = len(person["tasks"])
    lines = [f"【秸秆焚烧核查任务】{name}：{day}（北京时间）新增 {len(new)} 项任务，共 {total} 项。"]
    for i, task in enumerate(new[:alerts.top_tasks], start=1):
        when = task.get("time_bjt") or "时间未知"
        lines.append(f"{i}. {task['label_zh']} · {when} · {_place(task, cells)}")
    if len(new) > alerts.top_tasks:
        lines.append(f"……另有 {len(new) - alerts.top_tasks} 项新任务见任务页。")
    lines.append(f"任务页：{link}")
    lines.append(f"{name}: {len(new)} new task(s) on {day} (Beijing time), {total} in all; first: "
                 + "; ".join(f"{t['label_en']} {t.get('time_bjt') or ''}".strip() for t in new[:min(3, alerts.top_tasks)])
                 + f". Page: {link}")
    return Message("supervisor", name, f"【核查任务】{name} {day} 新增 {len(new)} 项 / {len(new)} new tasks",
                   _fit("\n".join(lines)), contact.mobile, contact.email)


def _county_rows(folder: Path) -> list[dict[str, str]]:
    path = folder / "report.csv"
    if not path.exists():
        return []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["level"] == "county"]
    return [r for r in rows if _int(r.get("straw_suspect")) > 0]


def _county_message(alerts: AlertsConfig, folder: Path, day: str, row: dict[str, str], supervisors: int, contact: Contact) -> Message:
    events, pixels = _int(row["straw_suspect"]), _int(row["straw_points"])
    change = row.get("change_previous_day") or ""
    versus = f"，较前一日 {int(float(change)):+d}" if change else ""
    versus_en = f", {int(float(change)):+d} vs the previous day" if change else ""
    checked = ""
    checked_en = ""
    if row.get("verified"):
        checked = (f"；前一日 {_int(row.get('previous_day'))} 起已核查 {_int(row['verified'])} 起"
                   f"（确认 {_int(row['confirmed'])}，误报 {_int(row['false_alarm'])}）")
        checked_en = f"; previous day: {_int(row['verified'])} of {_int(row.get('previous_day'))} verified"
    report = _link(alerts, folder, "report.html")
    text = (f"【秸秆焚烧日报】{row['name']} {day}（北京时间）：疑似秸秆焚烧 {events} 起（{pixels} 个火点）{versus}{checked}；"
            f"{supervisors} 名网格员有新任务。日报：{report}\n"
            f"{row['name']} {day} (Beijing time): {events} suspected straw-burning events ({pixels} fire pixels){versus_en}{checked_en}; "
            f"{supervisors} supervisor(s) have new tasks. Report: {report}")
    return Message("county", contact.name, f"【日报】{row['name']} {day} 疑似秸秆焚烧 {events} 起 / {events} suspected straw burning",
                   _fit(text), contact.mobile, contact.email)


def _missing_data(manifest: dict[str, Any]) -> list[str]:
    """What the operator must hear: fire data missing or empty for the night."""
    problems = [f"{s.get('file')}: {s.get('reason')}" for s in manifest.get("skipped", [])
                if str(s.get("file", "")).startswith(("[fires]", "[[fires.tables]]")) or "no rows" in str(s.get("reason", ""))]
    if not problems and manifest.get("counts", {}).get("rows_read") == 0 and (manifest.get("inputs", {}).get("fires") or
                                                                              manifest.get("inputs", {}).get("rasters")):
        problems.append("the fire files hold no rows")
    return ["; ".join(problems)[:1500]] if problems else []


def _operator_message(day: str, problem: str, contact: Contact) -> Message:
    text = (f"【gridwatch 运行提醒】{day}（北京时间）火点数据缺失或为空，今日核查任务可能不全：{problem}\n"
            f"gridwatch {day}: fire data missing or empty, tonight's tasks may be incomplete (see run.json).")
    return Message("operator", contact.name, f"【运行提醒】{day} 火点数据缺失 / fire data missing", _fit(text), contact.mobile, contact.email)


def _int(value: object) -> int:
    try:
        return int(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def _fit(text: str, limit: int = WECOM_MAX_BYTES) -> str:
    """``text`` cut at a line end to at most ``limit`` UTF-8 bytes (a WeCom robot refuses longer text)."""
    if len(text.encode("utf-8")) <= limit:
        return text
    out = ""
    for line in text.splitlines(keepends=True):
        if len((out + line + "…").encode("utf-8")) > limit:
            break
        out += line
    return out + "…"


# ------------------------------------------------------------------ channels


class Channel:
    name = ""

    def send(self, message: Message, timeout: float) -> None:  # raises on failure
        raise NotImplementedError

    def wants(self, message: Message) -> bool:
        return True


class _Robot(Channel):
    """A group robot's webhook: a JSON text message, ``{"errcode": 0}`` back when it was taken."""

    def __init__(self, url: str) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise AlertError(f"{self.name} webhook: expected an http(s) URL")
        self.url = url

    def payload(self, message: Message) -> dict[str, Any]:
        raise NotImplementedError

    def target(self) -> str:
        return self.url

    def send(self, message: Message, timeout: float) -> None:
        body = json.dumps(self.payload(message), ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(self.target(), data=body, method="POST",
                                         headers={"Content-Type": "application/json; charset=utf-8"})
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the URL's scheme is checked
            reply = json.loads(response.read(65536).decode("utf-8") or "{}")
        if reply.get("errcode", -1) != 0:
            raise RuntimeError(f"{self.name} robot answered errcode {reply.get('errcode')}: {reply.get('errmsg', '')}"[:300])


class WeComRobot(_Robot):
    """企业微信群机器人: ``{"msgtype": "text", "text": {"content", "mentioned_mobile_list"}}``; content ≤ 2048 bytes."""

    name = "wecom"

    def payload(self, message: Message) -> dict[str, Any]:
        text: dict[str, Any] = {"content": _fit(message.text)}
        if message.mobile:
            text["mentioned_mobile_list"] = [message.mobile]
        return {"msgtype": "text", "text": text}


class DingTalkRobot(_Robot):
    """钉钉自定义机器人: ``{"msgtype": "text", "text": {"content"}, "at": {"atMobiles", "isAtAll"}}``, signed when it has a secret."""

    name = "dingtalk"

    def __init__(self, url: str, secret: str = "") -> None:
        super().__init__(url)
        self.secret = secret

    def target(self) -> str:
        if not self.secret:
            return self.url
        stamp = str(round(time.time() * 1000))
        digest = hmac.new(self.secret.encode("utf-8"), f"{stamp}\n{self.secret}".encode("utf-8"), hashlib.sha256).digest()
        sign = urllib.parse.quote_plus(base64.b64encode(digest))
        return f"{self.url}{'&' if '?' in self.url else '?'}timestamp={stamp}&sign={sign}"

    def payload(self, message: Message) -> dict[str, Any]:
        body = message.text + (f"\n@{message.mobile}" if message.mobile else "")  # DingTalk shows the @ only if it is in the text
        return {"msgtype": "text", "text": {"content": body}, "at": {"atMobiles": [message.mobile] if message.mobile else [], "isAtAll": False}}


class Mail(Channel):
    """Mail over SMTP (STARTTLS, SSL or plain on an intranet relay) to the recipient's address."""

    name = "email"

    def __init__(self, alerts: AlertsConfig) -> None:
        self.alerts = alerts
        self.user = os.environ.get(alerts.smtp_user_env, "") if alerts.smtp_user_env else ""
        self.password = os.environ.get(alerts.smtp_password_env, "") if alerts.smtp_password_env else ""

    def wants(self, message: Message) -> bool:
        return bool(message.email)

    def send(self, message: Message, timeout: float) -> None:
        a = self.alerts
        mail = EmailMessage()
        mail["Subject"], mail["From"], mail["To"] = message.subject, a.mail_from, message.email
        mail.set_content(message.text)
        factory = smtplib.SMTP_SSL if a.smtp_security == "ssl" else smtplib.SMTP
        with factory(a.smtp_host, a.smtp_port, timeout=timeout) as smtp:
            if a.smtp_security == "starttls":
                smtp.starttls()
            if self.user:
                smtp.login(self.user, self.password)
            smtp.send_message(mail)


def channels_of(alerts: AlertsConfig) -> list[Channel]:
    """The channels ``[alerts]`` and the environment configure (a robot whose URL variable is unset is not used)."""
    out: list[Channel] = []
    wecom = os.environ.get(alerts.wecom_webhook_env, "") if alerts.wecom_webhook_env else ""
    if wecom:
        out.append(WeComRobot(wecom))
    ding = os.environ.get(alerts.dingtalk_webhook_env, "") if alerts.dingtalk_webhook_env else ""
    if ding:
        out.append(DingTalkRobot(ding, os.environ.get(alerts.dingtalk_secret_env, "") if alerts.dingtalk_secret_env else ""))
    if alerts.smtp_host:
        out.append(Mail(alerts))
    return out


# ------------------------------------------------------------------ sending


class _Pace:
    """At most ``per_minute`` sends a minute on one channel."""

    def __init__(self, per_minute: int, sleep: Callable[[float], None]) -> None:
        self.per_minute, self.sleep, self.sent = per_minute, sleep, deque()

    def wait(self) -> None:
        now = time.monotonic()
        while self.sent and now - self.sent[0] >= 60:
            self.sent.popleft()
        if len(self.sent) >= self.per_minute:
            self.sleep(60 - (now - self.sent[0]))
            self.sent.popleft()
        self.sent.append(time.monotonic())


def deliver(messages: list[Message], channels: list[Channel], sent_log: Path, day: str, alerts: AlertsConfig,
            sleep: Callable[[float], None] = time.sleep) -> list[SendRecord]:
    """Send each message on each channel that wants it, once per (day, kind, recipient, channel); see the module's docstring."""
    sent_log.parent.mkdir(parents=True, exist_ok=True)
    records = []
    with shared_lock(sent_log, timeout_s=600):
        done = set()
        if sent_log.exists():
            for line in sent_log.read_text(encoding="utf-8").splitlines():
                try:
                    done.add(json.loads(line)["key"])
                except (ValueError, KeyError):
                    continue  # a line cut by a crash: that message is sent again rather than lost
        paces = {c.name: _Pace(alerts.per_minute, sleep) for c in channels}
        for message in messages:
            for channel in channels:
                if not channel.wants(message):
                    continue
                key = f"{day}|{message.kind}|{message.recipient}|{channel.name}"
                if key in done:
                    records.append(SendRecord(message.kind, message.recipient, channel.name, "already_sent"))
                    continue
                record = _send(channel, message, alerts, paces[channel.name], sleep)
                records.append(record)
                if record.status == "sent":
                    done.add(key)
                    with open(sent_log, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps({"key": key, **asdict(record)}, ensure_ascii=False) + "\n")
                        handle.flush()
                        os.fsync(handle.fileno())
                else:
                    log.error("alert to %s on %s failed after %d attempt(s): %s", message.recipient, channel.name, record.attempts, record.error)
    return records


def _send(channel: Channel, message: Message, alerts: AlertsConfig, pace: _Pace, sleep: Callable[[float], None]) -> SendRecord:
    error = ""
    for attempt in range(alerts.retries + 1):
        if attempt:
            sleep(alerts.backoff_s * 2 ** (attempt - 1))
        pace.wait()
        try:
            channel.send(message, alerts.timeout_s)
            return SendRecord(message.kind, message.recipient, channel.name, "sent", attempt + 1)
        except Exception as exc:  # noqa: BLE001 - any failure of a channel is recorded, never raised into the night
            error = f"{type(exc).__name__}: {exc}"[:300]
    return SendRecord(message.kind, message.recipient, channel.name, "failed", alerts.retries + 1, error)


def send_night_alerts(config: Config, folder: Path, day: dt.date, out_root: Path, *, dry_run: bool = False,
                      out: TextIO | None = None) -> list[SendRecord]:
    """Send (or, ``dry_run``, print to ``out``) the messages of the finished run in ``folder``; record the sends in its
    ``run.json``. Never raises for a channel or a message; an ``AlertError`` only with ``dry_run`` (asked for directly)."""
    alerts = config.alerts
    try:
        contacts = None
        if alerts.contacts:
            path = Path(alerts.contacts)
            contacts = read_contacts(path if path.is_absolute() else config.base_dir / path)
        messages = build_messages(alerts, Path(folder), contacts)
        channels = [] if dry_run else channels_of(alerts)
    except AlertError as exc:
        if dry_run:
            raise
        log.error("alerts not sent: %s", exc)
        _record(Path(folder), [SendRecord("all", "", "", "failed", 0, str(exc)[:300])])
        return []
    if dry_run:
        stream = out or sys.stdout
        names = ", ".join(c.name for c in channels_of(alerts)) or "未配置渠道 no channel configured"
        print(f"gridwatch alerts {day.isoformat()}（试运行 dry run）: {len(messages)} 条消息 messages; 渠道 channels: {names}", file=stream)
        for m in messages:
            to = m.recipient + (f" @{m.mobile}" if m.mobile else "") + (f" <{m.email}>" if m.email else "")
            print(f"\n—— 致 to {to}（{m.kind}）· {m.subject}\n{m.text}", file=stream)
        return []
    if not channels:
        log.warning("[alerts] enabled, but no channel is configured (webhook variables unset, no smtp_host): nothing sent")
    records = deliver(messages, channels, Path(out_root) / "state" / "alerts" / f"sent-{day.isoformat()}.jsonl", day.isoformat(), alerts)
    _record(Path(folder), records)
    return records


def _record(folder: Path, records: list[SendRecord]) -> None:
    """Append ``records`` to ``run.json``'s ``alerts`` (written to a temporary file and renamed)."""
    path = folder / "run.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.error("%s: cannot record the alerts: %s", path, exc)
        return
    manifest["alerts"] = list(manifest.get("alerts") or []) + [asdict(r) for r in records]
    write_atomic(path, json.dumps(manifest, ensure_ascii=False, indent=2, default=str))

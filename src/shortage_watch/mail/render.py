"""Mail templates: one jinja2 source per template and language gives subject, text and HTML.

Templates live in `<lang>/<name>.j2` under the folder named by `mail.templates_dir`
(operators' overrides, searched first) and then the packaged `shortage_watch/templates`.
Each extends `<lang>/_layout.j2` and is rendered three times: `part="subject"` and
`part="text"` without escaping, `part="html"` with autoescape, so a record's text can
never become markup. Undefined names raise (StrictUndefined): a template that does not
fit its context fails loudly instead of mailing a blank.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, TemplateError, pass_context
from jinja2.runtime import Context

from shortage_watch.calendar import WorkingCalendar
from shortage_watch.domain.labels import LABELS
from shortage_watch.mail.names import LANGUAGES


_WEEKDAYS_ZH = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")

def report_channels_for(*, reply_to: str | None, inbox: str | None = None, portal_url: str | None = None) -> dict[str, str | None]:
    """How a distributor hands in its report, as mail tells it: an inbox folder it uploads to (`mail.report_inbox`),
    the reply address someone reads (`mail.reply_to`), and the web portal (`web.public_url`, once there is one).
    A channel left unset is never offered: no mail asks for a reply to an address nobody reads."""
    return {"inbox": inbox, "email": reply_to, "portal_url": portal_url}


CONTEXT_DEFAULTS: dict[str, Any] = {"entered_at": None, "prior_steps": {}, "sent_with": [], "catch_up": None}


class RenderError(Exception):
    """A template that is missing or does not fit its context (permanent for that alert)."""


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def _parse(value: Any) -> date | datetime:
    if isinstance(value, (date, datetime)):
        return value
    text = str(value)
    if len(text) == 10:
        return date.fromisoformat(text)
    return datetime.fromisoformat(text)


def _language(ctx: Context) -> str:
    return ctx.get("lang") or "zh-CN"


class _Formats:
    """Date filters in the settings' zone, in the reader's language."""

    def __init__(self, tz: ZoneInfo, is_working_day: Callable[[date], bool]) -> None:
        self.tz = tz
        self.is_working_day = is_working_day

    def _local(self, value: Any) -> tuple[date, time | None]:
        parsed = _parse(value)
        if isinstance(parsed, datetime):
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=self.tz)
            local = parsed.astimezone(self.tz)
            return local.date(), local.time().replace(microsecond=0)
        return parsed, None

    def day_text(self, lang: str, day: date) -> str:
        """The date with its weekday; a weekend day that is a working day says so (调休上班日)."""
        makeup = day.weekday() >= 5 and self.is_working_day(day)
        if lang == "en":
            return f"{day:%A} {day.day} {day:%B %Y}" + (" (a make-up working day)" if makeup else "")
        return f"{day.year}年{day.month}月{day.day}日（{_WEEKDAYS_ZH[day.weekday()]}{'，调休上班日' if makeup else ''}）"

    @pass_context
    def day(self, ctx: Context, value: Any) -> str:
        """2024年10月10日（星期四） / Thursday 10 October 2024."""
        if value is None:
            return "—"
        day, _ = self._local(value)
        return self.day_text(_language(ctx), day)

    @pass_context
    def instant(self, ctx: Context, value: Any) -> str:
        """2024年10月10日（星期四）17:30 / Thursday 10 October 2024, 17:30."""
        if value is None:
            return "—"
        day, at = self._local(value)
        lang = _language(ctx)
        if at is None:
            return self.day_text(lang, day)
        return f"{self.day_text(lang, day)}{', ' if lang == 'en' else ''}{at:%H:%M}"

    @pass_context
    def by(self, ctx: Context, value: Any) -> str:
        """A deadline: 2024年10月10日（星期四）17:30前; the end of a day reads 24:00前."""
        if value is None:
            return "—"
        day, at = self._local(value)
        lang = _language(ctx)
        end_of_day = at is None or at >= time(23, 59)
        if lang == "en":
            return f"by the end of {self.day_text(lang, day)}" if end_of_day else f"by {at:%H:%M} on {self.day_text(lang, day)}"
        return f"{self.day_text(lang, day)}{'24:00' if end_of_day else f'{at:%H:%M}'}前"


@pass_context
def _label(ctx: Context, value: Any, group: str) -> str:
    if value is None:
        return "—"
    return LABELS[group].get(_language(ctx), LABELS[group]["zh-CN"]).get(str(value), str(value))


@pass_context
def _notice_kind(ctx: Context, notice: Any, group: str = "kind") -> str:
    """The notice's kind (停产 …), or a generic word when the notice was never seen."""
    if notice and notice.get("kind"):
        return _label(ctx, notice["kind"], group)
    return "停产断供" if _language(ctx) != "en" else ("stoppage or interruption" if group == "kind_noun" else "stopped or interrupted")


def _number(value: Any) -> str:
    """12.0 → 12, 3.25 → 3.25, None → —."""
    if value is None:
        return "—"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def packaged_templates_dir() -> Path:
    return Path(str(resources.files("shortage_watch") / "templates"))


class Renderer:
    """Renders a named template in one language to subject, text and HTML."""

    def __init__(
        self,
        templates_dir: Path | None = None,
        tz: str = "Asia/Shanghai",
        reply_to: str | None = None,
        *,
        calendar: Any = None,
        report_channels: dict[str, str | None] | None = None,
        portal_url: str | None = None,
    ) -> None:
        """`calendar` (the App's, with its overrides; the built-in one by default) marks make-up working days;
        `report_channels` says how a distributor reports (see `report_channels`); `portal_url`
        (web.public_url) links a distributor's mail to its obligation's page."""
        folders = [str(templates_dir)] if templates_dir is not None else []
        folders.append(str(packaged_templates_dir()))
        loader = ChoiceLoader([FileSystemLoader(f) for f in folders])
        formats = _Formats(ZoneInfo(tz), (calendar or WorkingCalendar(tz=tz)).is_working_day)
        # One environment per (format, language): `part` and `lang` are globals there, so
        # `_macros.j2` is imported without context and cached, not re-run for every mail.
        self._envs = {
            (fmt, lang): self._environment(loader, formats, autoescape=fmt == "html", part=fmt, lang=lang)
            for fmt in ("text", "html")
            for lang in LANGUAGES
        }
        self._text = self._envs[("text", "zh-CN")]
        self.reply_to = reply_to
        self.report_channels = report_channels or report_channels_for(reply_to=reply_to)
        self.portal_url = portal_url

    @staticmethod
    def _environment(loader: ChoiceLoader, formats: _Formats, autoescape: bool, part: str, lang: str) -> Environment:
        env = Environment(
            loader=loader,
            undefined=StrictUndefined,
            autoescape=autoescape,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        env.filters.update(day=formats.day, instant=formats.instant, by=formats.by, label=_label, num=_number, notice_kind=_notice_kind)
        env.globals.update(part=part, lang=lang)
        return env

    def render(self, template: str, context: dict[str, Any], language: str = "zh-CN") -> RenderedMail:
        """Subject (one line), plain text and HTML for `template`; RenderError if it cannot be rendered."""
        lang = language if language in LANGUAGES else "zh-CN"
        name = f"{lang}/{template}.j2"
        # Outbox rows written before a context key existed render as if it said nothing.
        values = {**CONTEXT_DEFAULTS, **context, "lang": lang, "reply_to": self.reply_to,
                  "report_channels": self.report_channels, "portal_link": self._portal_link(context),
                  "dashboard_link": self._dashboard_link(context)}
        try:
            text_template = self._envs[("text", lang)].get_template(name)
            subject = text_template.render(values, part="subject")
            text = text_template.render(values)
            html = self._envs[("html", lang)].get_template(name).render(values)
        except TemplateError as exc:
            raise RenderError(f"template {name}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise RenderError(f"template {name}: bad context value: {exc}") from None
        return RenderedMail(subject=" ".join(subject.split()), text=_tidy_text(text), html=html.strip() + "\n")

    def _portal_link(self, context: dict[str, Any]) -> str | None:
        """The portal page of the obligation a distributor's mail is about (web.public_url), else None."""
        number = str(context.get("case_number") or "")
        recipient = context.get("recipient") or {}
        if self.portal_url is None or not number.startswith("SW-O-") or recipient.get("role") != "distributor":
            return None
        return f"{self.portal_url}/obligations/{number}"

    def _dashboard_link(self, context: dict[str, Any]) -> str | None:
        """The bureau dashboard page of what a bureau's mail is about: the obligation's or case's detail page,
        the digest's overdue list, the monthly summary's compliance list; None for other recipients."""
        recipient = context.get("recipient") or {}
        if self.portal_url is None or recipient.get("role") not in ("insurance", "health"):
            return None
        number = str(context.get("case_number") or "")
        if context.get("template") == "digest":
            return f"{self.portal_url}/bureau/obligations?state=overdue"
        if context.get("template") == "monthly_summary" and context.get("month"):
            year, month = (int(part) for part in str(context["month"]).split("-"))
            last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
            return f"{self.portal_url}/bureau/compliance?due_from={year:04d}-{month:02d}-01&due_to={year:04d}-{month:02d}-{last:02d}"
        for prefix, page in (("SW-O-", "obligations"), ("SW-C-", "cases")):
            if number.startswith(prefix) and number[len(prefix):].isdigit():
                return f"{self.portal_url}/bureau/{page}/{int(number[len(prefix):])}"
        return None

    def available(self) -> list[str]:
        """Every template name the loader can find, for `mail preview` help."""
        names = {n.split("/", 1)[1][:-3] for n in self._text.list_templates() if n.endswith(".j2") and "/" in n}
        return sorted(n for n in names if not n.startswith("_"))


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"

"""Templates: every alert kind renders in both languages, dates read as a Chinese officer
expects, undefined names fail loudly, and an operator's folder overrides the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from shortage_watch.mail.names import ALERT_TEMPLATES, LANGUAGES, MAIL_TEMPLATES
from shortage_watch.mail.render import RenderError, Renderer
from shortage_watch.mail.samples import EXPLANATION_LADDER, sample_context, sample_explanation_context


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", ALERT_TEMPLATES + MAIL_TEMPLATES)
def test_every_template_renders_subject_text_and_html(renderer, template, language):
    context = sample_context(template)
    mail = renderer.render(template, context, language)
    assert mail.subject and "\n" not in mail.subject
    assert mail.html.lstrip().startswith("<!DOCTYPE html>") and f'lang="{language}"' in mail.html
    assert "{{" not in mail.text + mail.html and "{%" not in mail.text + mail.html
    if context.get("case_number"):
        # Each mail names its case number, in the subject and both bodies.
        assert context["case_number"] in mail.subject
        assert context["case_number"] in mail.text and context["case_number"] in mail.html


def test_deadline_reads_with_weekday_in_shanghai_time(renderer):
    mail = renderer.render("receipt", sample_context("receipt"))
    assert "请于2024年10月10日（星期四）17:30前书面报告" in mail.subject
    assert "2024年9月27日（星期五）" in mail.text


@pytest.mark.parametrize("calendar", ["override", "estimated"])
def test_receipt_names_an_uncertain_calendar_in_one_clean_sentence(renderer, calendar):
    context = sample_context("receipt")
    context["deadline"] = {**context["deadline"], "calendar": calendar}
    text = renderer.render("receipt", context).text
    assert "按按" not in text and "期限依据" in text and "节假日安排" in text


def test_end_of_day_deadline_reads_24_00(renderer):
    context = sample_context("explanation_request")
    assert "2024年10月18日（星期五）24:00前" in renderer.render("explanation_request", context).subject
    assert "by the end of Friday 18 October 2024" in renderer.render("explanation_request", context, "en").subject


def test_utc_instants_are_shown_in_shanghai(renderer):
    context = sample_context("receipt")
    context["deadline"] = {**context["deadline"], "due_at": "2024-10-10T09:30:00+00:00"}
    assert "2024年10月10日（星期四）17:30前" in renderer.render("receipt", context).text


def test_english_mail_uses_english_dates(renderer):
    mail = renderer.render("written_reminder", sample_context("written_reminder"), "en")
    assert "by 17:30 on Thursday 10 October 2024" in mail.text
    assert "Formal written reminder" in mail.subject


def test_written_reminder_reads_like_a_formal_notice(renderer):
    mail = renderer.render("written_reminder", sample_context("written_reminder"))
    lines = mail.text.splitlines()
    assert lines[0] == "关于逾期未书面报告药品停产情况的书面提醒"
    assert "宁德市华康医药有限公司：" in lines  # salutation line
    assert "已逾期1个工作日" in mail.text and "特此提醒。" in mail.text


def test_missing_context_key_is_a_render_error(renderer):
    context = sample_context("written_reminder")
    del context["deadline"]
    with pytest.raises(RenderError, match="deadline"):
        renderer.render("written_reminder", context)


def test_unknown_template_is_a_render_error(renderer):
    with pytest.raises(RenderError, match="no_such_template"):
        renderer.render("no_such_template", sample_context("receipt"))


def test_html_escapes_record_text_but_text_part_keeps_it(renderer):
    context = sample_context("written_reminder")
    context["product"] = {**context["product"], "name": '<script>alert("x")</script>&'}
    mail = renderer.render("written_reminder", context)
    assert "<script>" not in mail.html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;" in mail.html
    assert '<script>alert("x")</script>&' in mail.text


def test_operator_folder_overrides_one_template(tmp_path: Path):
    (tmp_path / "zh-CN").mkdir()
    (tmp_path / "zh-CN" / "receipt.j2").write_text(
        '{% extends "zh-CN/_layout.j2" %}{% block subject %}本地回执 {{ product.name }}{% endblock %}'
        "{% block title %}本地{% endblock %}{% block body %}本地正文{% endblock %}",
        encoding="utf-8",
    )
    custom = Renderer(tmp_path)
    assert custom.render("receipt", sample_context("receipt")).subject.startswith("本地回执 注射用头孢曲松钠")
    assert custom.render("reminder", sample_context("reminder")).subject.startswith("温馨提醒")
    assert "receipt" in custom.available()


def test_unknown_language_falls_back_to_chinese(renderer):
    assert renderer.render("receipt", sample_context("receipt"), "fr").subject.startswith("回执")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", EXPLANATION_LADDER)
def test_explanation_ladder_mail_speaks_of_the_explanation_not_a_notice(renderer, template, language):
    mail = renderer.render(template, sample_explanation_context(template), language)
    words = ("说明", "停产") if language == "zh-CN" else ("expla", "stoppage")
    assert words[0] in mail.subject + mail.text and words[1] not in mail.subject
    assert "SW-O-000131" in mail.subject and "宁德市医院" in mail.text  # the case's hospitals are listed


def test_report_without_a_known_notice_still_renders(renderer):
    # A distributor report for a notice never seen opens the obligation: no manufacturer, no notice id.
    context = sample_context("late_report")
    context.update(manufacturer=None, notice={**context["notice"], "notice_id": "", "reason": None})
    mail = renderer.render("late_report", context)
    assert "通知编号" not in mail.text
    context["notice"] = None
    assert "停产断供" in renderer.render("receipt", context).subject

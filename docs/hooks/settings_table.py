"""mkdocs hook: the settings table of docs/configuration.md, generated from the declarations the program reads
(each provider's settings spec, the shared source settings, `pipelines.settings.JOB_SETTINGS`), so the page
cannot drift from the code. The page holds the marker `<!-- settings-table -->` where the table goes."""

from __future__ import annotations

from typing import Any

MARKER = "<!-- settings-table -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def settings_table() -> str:
    from pipelines.registry import providers
    from pipelines.settings import JOB_SETTINGS
    from sources.common.settings import SHARED

    rows = ["| setting (environment variable) | meaning | default |", "| --- | --- | --- |"]
    for provider in providers():
        for s in provider.settings:
            secret = " (secret)" if s.secret and "secret" not in s.help else ""
            rows.append(f"| `{provider.setting(s.key)}` | {_cell(s.help)}{secret} | `{_cell(s.shown_default())}` |")
    rows += [f"| `SOURCES__{s.key.upper()}` | {_cell(s.help)} | see meaning |" for s in SHARED]
    rows += [f"| `{s.variable}` | {_cell(s.help)} | `{_cell(s.default)}` |" for s in JOB_SETTINGS]
    return "\n".join(rows)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return markdown.replace(MARKER, settings_table()) if MARKER in markdown else markdown

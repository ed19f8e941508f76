"""The README's configuration table, generated from `Settings` so the two cannot drift."""

from __future__ import annotations

from guard.docblock import replace_block
from guard.settings import Settings

BLOCK = "settings-table"


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        if not isinstance(value, dict):
            return f"`{round(value, 4) if isinstance(value, float) else value}`"
        return f"{', '.join(f'`{k}`' for k in value)} (see README)" if value else "`{}`"
    return "unset" if field.default is None else f"`{field.default}`"


def settings_table() -> str:
    lines = ["| setting | environment | default | meaning |", "|---|---|---|---|"]
    kafka_last = sorted(Settings.model_fields.items(), key=lambda kv: kv[0].startswith("kafka_"))
    for name, field in kafka_last:
        lines.append(f"| `{name}` | `GUARD_{name.upper()}` | {_default(field)} | {field.description} |")
    return "\n".join(lines)


def render_into(readme: str) -> str:
    return replace_block(readme, BLOCK, settings_table())


if __name__ == "__main__":
    import sys
    from pathlib import Path

    if "--write" in sys.argv:
        readme = Path("README.md")
        text = readme.read_text()
        readme.write_text(render_into(text))
    else:
        print(settings_table())

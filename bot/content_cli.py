"""`frontdesk content check DIR`: validate a content folder without starting anything (docs/content.md)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer

from bot.content import ContentError
from bot.content_store import Bundle, load_bundle
from frontdesk.core.durations import format_duration
from frontdesk.core.sla import SlaTargets

app = typer.Typer(no_args_is_help=True)


@app.command("check")
def check_command(
    directory: Path = typer.Argument(..., help="The content folder: faq.yml, events.yml, replies.yml, words.yml, "
                                     "tags.yml, listening.yml, taxonomy.yml."),
    taxonomy: Path | None = typer.Option(None, help="The taxonomy file, if not DIRECTORY/taxonomy.yml "
                                         "(FRONTDESK_TAXONOMY_PATH)."),
) -> None:
    """Check every file the way start-up and a reload do: exit 1 naming file:line, exit 0 with a summary."""
    if not directory.is_dir():
        typer.echo(f"frontdesk content check: {directory} is not a directory", err=True)
        raise typer.Exit(1)
    try:
        bundle = load_bundle(directory, taxonomy or directory / "taxonomy.yml")
    except ContentError as exc:
        typer.echo(f"frontdesk content check: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(summary(directory, bundle))


def summary(directory: Path, bundle: Bundle) -> str:
    content, texts, words = bundle.content, bundle.content.texts, bundle.content.words
    wordings = sum(len(w) for w in texts.publics.values())
    queues = Counter(r.queue for r in bundle.taxonomy.intents.values())
    return "\n".join([
        f"{directory}: content OK",
        f"  faq.yml       {len(content.faq)} answers",
        f"  events.yml    {len(content.events)} events",
        f"  replies.yml   {len(texts.dms)} DM texts, {len(texts.publics)} public replies in {wordings} wordings "
        f"(each fits 280), {len(texts.parts)} parts",
        f"  words.yml     angry {len(words.angry.phrases)}, did_not_help {len(words.did_not_help_phrases.phrases)}, "
        f"register {len(words.register.phrases)}, person {len(words.person.phrases)}, "
        f"confirm {len(words.yes.phrases)} yes / {len(words.no.phrases)} no, "
        f"about_events {len(words.about_events.phrases)}, "
        f"csat_scores {sum(len(p.phrases) for _, p in words.csat_scores)}, "
        f"opt_in {len(words.opt_in_phrases.phrases) + len(words.opt_in_alone)}, "
        f"opt_out {len(words.opt_out_phrases.phrases) + len(words.opt_out_alone)} phrases",
        f"  tags.yml      {len(content.tags.rules)} rules"
        + (" -> " + ", ".join(dict.fromkeys(r.tag for r in content.tags.rules)) if content.tags.rules else ""),
        f"  listening.yml {len(content.listening.rules)} rules ({content.listening.tier}): "
        + (", ".join(content.listening.names) or "none"),
        f"  taxonomy.yml  {len(bundle.taxonomy.intents)} intents -> "
        + ", ".join(f"{q} ({n})" for q, n in sorted(queues.items())),
        f"  sla.yml       {_sla_summary(content.sla)}",
    ])


def _sla_summary(sla: SlaTargets) -> str:
    if not sla.enabled:
        return "absent: no SLAs"
    default = ", ".join(f"{m.value} {format_duration(s)}" for m, s in sla.default.items()) or "none"
    named = sum(len(p) for p in sla.by_queue.values())
    return f"default {default}; {named} queue/priority blocks"

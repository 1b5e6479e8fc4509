"""WER and CER (torchmetrics), CTC loss, example transcripts and a posteriogram; `rsuite evaluate` calls this."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.text import CharErrorRate, WordErrorRate

from .decode import make_decoder
from .model import ctc_loss
from .text import Vocabulary

EXAMPLES = 12


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, info: dict[str, Any], cfg: Any,
             run_dir: Path | None = None) -> dict[str, float]:
    """Decode the whole loader; metrics under the fixed names ``wer``, ``cer``, ``loss``, ``utterances``.

    ``wer``/``cer`` use the configured decoder (``model.decoder``); when that is the beam search,
    ``wer_greedy``/``cer_greedy`` give the best-path transcripts of the same posteriors beside it,
    so what the lexicon and LM add is always on record.
    """
    vocab = Vocabulary(info["tokens"])
    decoders = {"": make_decoder(cfg, vocab)}
    if cfg.model.decoder != "greedy":
        decoders["_greedy"] = make_decoder(cfg, vocab, "greedy")
    # The engine evaluates the whole validation set on rank 0, so metrics must not sync.
    scores = {k: (WordErrorRate(sync_on_compute=False), CharErrorRate(sync_on_compute=False)) for k in decoders}
    total_loss, count, examples, first = 0.0, 0, [], None
    for feats, frames, targets, lengths in loader:
        feats, frames = feats.to(device), frames.to(device)
        logits, out_frames = model(feats, frames)
        total_loss += float(ctc_loss(logits, out_frames, targets.to(device), lengths.to(device))) * len(frames)
        count += len(frames)
        refs = [vocab.decode(t[: int(n)].tolist()) for t, n in zip(targets, lengths)]
        texts = {k: decode(logits, out_frames) for k, decode in decoders.items()}
        for k, (wer, cer) in scores.items():
            wer.update(texts[k], refs)
            cer.update(texts[k], refs)
        hyps, greedy = texts[""], texts.get("_greedy", texts[""])
        examples += list(zip(refs, hyps, greedy))[: max(0, EXAMPLES - len(examples))]
        if first is None:
            first = (feats[0, :, : int(frames[0])].cpu(), logits[0, :, : int(out_frames[0])].float().cpu(),
                     refs[0], hyps[0])
    if run_dir is not None and first is not None:
        lines = [f"REF: {r}\nHYP: {h}\n" + (f"BEST PATH: {g}\n" if "_greedy" in decoders else "")
                 for r, h, g in examples]
        (Path(run_dir) / "transcripts.txt").write_text("\n".join(lines))
        plot_posteriogram(*first, vocab, Path(run_dir) / "posteriogram.png")
    metrics: dict[str, float] = {}
    for k, (wer, cer) in scores.items():
        metrics[f"wer{k}"], metrics[f"cer{k}"] = float(wer.compute()), float(cer.compute())
    return {**metrics, "loss": total_loss / max(1, count), "utterances": count}


def plot_posteriogram(feats: torch.Tensor, logits: torch.Tensor, ref: str, hyp: str, vocab: Vocabulary,
                      path: Path) -> Path:
    """Log-mel input over the CTC posteriors of one validation utterance: what the model hears and spells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs = logits.softmax(0)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=False)
    top.imshow(feats.numpy(), origin="lower", aspect="auto", cmap="magma")
    top.set(title=f"REF: {ref}", ylabel="mel bin", xlabel="frame (10 ms)")
    bottom.imshow(probs.numpy(), origin="lower", aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
    labels = ["_" if t == " " else ("·" if i == vocab.blank else t) for i, t in enumerate(vocab.tokens)]
    bottom.set_yticks(range(len(labels)), labels, fontsize=6)
    bottom.set(title=f"HYP: {hyp}", xlabel="output frame", ylabel="token (· blank, _ space)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

"""Looking inside: the filters' motifs (`motifs`) and in-silico mutagenesis (`explain`).

motifs (DanQ's and DeepBind's procedure): run the first convolution over the sequences;
for each filter, every window whose activation reaches `threshold` x the filter's maximum
over all sequences is a site; the letters of its sites, counted per position (ambiguity
codes as their base shares), plus a pseudocount of 0.01 and normalised, are the filter's
position weight matrix. Motifs are ranked by influence, as Basset ranks its filters: the
mean change of the predicted probabilities (total variation, 0..1) when the filter is
switched off (its weights and bias set to 0). Written as MEME motif format 4 (for Tomtom
against JASPAR), a table (influence, sites, information content, consensus) and sequence
logos (logomaker, information content in bits against the sequences' own base
frequencies).

explain: every base of the sequence changed to each of the other three, all 3 x length
mutants predicted at once; the map is the change of the chosen class's probability, the
attribution of each position the mean drop over its three mutants (positive: the base
there supports the class), drawn as a logo of the sequence's own letters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.errors import UserError
from common.runtime import RunDir, atomic_write
from recipes.dna import data as dna_data
from recipes.dna import model as model_lib
from recipes.dna import predict as predict_lib
from recipes.dna.config import HELDOUT_FILE

PSEUDOCOUNT = 0.01
MIN_SITES = 5


def scanner_activations(model, sequences, length: int, batch: int = 256):
    """(activations float32[n, time, filters] after the ReLU, padding zeroed; one-hot
    float32[n, time, 4]; the first convolution's kernel width)."""
    import tensorflow as tf

    one_hot = model.get_layer(model_lib.ONE_HOT_LAYER)
    fixed = model.get_layer(model_lib.FIXED_LENGTH_LAYER)
    conv = model.get_layer(model_lib.SCANNER_LAYER).convs[0]
    acts, xs = [], []
    for start in range(0, len(sequences), batch):
        x, mask = fixed(*one_hot(tf.constant(list(sequences[start : start + batch]))))
        acts.append((conv(x) * tf.cast(mask, tf.float32)[..., None]).numpy())
        xs.append(x.numpy())
    return np.concatenate(acts), np.concatenate(xs), conv.kernel_size[0]


def position_weight_matrices(acts, x, kernel: int, threshold: float):
    """Per filter: (pwm float[kernel, 4] or None without sites, number of sites)."""
    n, time, filters = acts.shape
    left = (kernel - 1) // 2  # "same" padding: output step i sees inputs i - left ...
    padded = np.pad(x, ((0, 0), (left, kernel - 1 - left), (0, 0)))
    result = []
    for f in range(filters):
        top = acts[..., f].max()
        if top <= 0:
            result.append((None, 0))
            continue
        seq, step = np.nonzero(acts[..., f] >= threshold * top)
        counts = padded[seq[:, None], step[:, None] + np.arange(kernel)].sum(axis=0)
        counts = counts + PSEUDOCOUNT
        result.append((counts / counts.sum(axis=1, keepdims=True), len(seq)))
    return result


def influence(model, sequences, filters) -> dict[int, float]:
    """{filter: mean total-variation change of the predictions with that filter off}."""
    conv = model.get_layer(model_lib.SCANNER_LAYER).convs[0]
    kernel, bias = conv.get_weights()
    batches = predict_lib.batches(model, list(sequences))
    step = predict_lib.predict_step(model)

    def predict():  # one traced function: the weights are read at every call
        return np.concatenate([step(x).numpy() for x in batches])

    reference = predict()
    result = {}
    try:
        for f in filters:
            k, b = kernel.copy(), bias.copy()
            k[..., f], b[f] = 0.0, 0.0
            conv.set_weights([k, b])
            changed = predict()
            result[f] = float(np.abs(changed - reference).sum(axis=1).mean() / 2)
    finally:
        conv.set_weights([kernel, bias])
    return result


def information(pwm: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Bits per position: the relative entropy of each row against `background`."""
    return (pwm * np.log2(pwm / background)).sum(axis=1)


def consensus(pwm: np.ndarray) -> str:
    return "".join(dna_data.BASES[i] for i in pwm.argmax(axis=1))


def meme_text(motifs: list[dict], background: np.ndarray) -> str:
    """MEME minimal motif format, version 4."""
    lines = [
        "MEME version 4",
        "",
        "ALPHABET= ACGT",
        "",
        "strands: + -",
        "",
        "Background letter frequencies",
        " ".join(f"{b} {p:.4f}" for b, p in zip(dna_data.BASES, background, strict=True)),
        "",
    ]
    for m in motifs:
        pwm = m["pwm"]
        lines += [
            f"MOTIF {m['name']} {m['consensus']}",
            f"letter-probability matrix: alength= 4 w= {len(pwm)} nsites= {m['sites']} E= 0",
            *(" ".join(f"{p:.6f}" for p in row) for row in pwm),
            "",
        ]
    return "\n".join(lines)


def _logo(ax, matrix: np.ndarray, title: str) -> None:
    import logomaker
    import pandas as pd

    frame = pd.DataFrame(matrix, columns=list(dna_data.BASES))
    logomaker.Logo(frame, ax=ax, color_scheme="classic")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])


def run_motifs(model_dir: Path, spec, output_dir, top: int, threshold: float) -> dict:
    from common import runtime

    info = predict_lib.ModelInfo.read(model_dir)
    source = RunDir(model_dir).evaluation_data(spec, HELDOUT_FILE)
    options = dna_data.ReadOptions(labels=False)
    rows, description = dna_data.read_rows(dna_data.resolve(source), options)
    seqs = [r[1] for r in rows]
    model = runtime.load_model(model_dir)
    acts, x, kernel = scanner_activations(model, seqs, info.length)
    base = x.sum(axis=(0, 1)) + 1.0
    background = base / base.sum()
    motifs = []
    for f, (pwm, sites) in enumerate(position_weight_matrices(acts, x, kernel, threshold)):
        if pwm is None or sites < MIN_SITES:
            continue
        bits = information(pwm, background)
        motifs.append(
            {
                "name": f"filter{f + 1}",
                "pwm": pwm,
                "sites": sites,
                "information": float(bits.sum()),
                "consensus": consensus(pwm),
                "bits": pwm * bits[:, None],
            }
        )
    if not motifs:
        raise UserError(f"{description}: no filter has {MIN_SITES} sites in these sequences")
    effects = influence(model, seqs, [int(m["name"][len("filter") :]) - 1 for m in motifs])
    for m in motifs:
        m["influence"] = effects[int(m["name"][len("filter") :]) - 1]
    motifs.sort(key=lambda m: -m["influence"])
    out = Path(output_dir) if output_dir else Path(model_dir) / "motifs"
    out.mkdir(parents=True, exist_ok=True)
    meme = out / "motifs.meme"
    atomic_write(meme, lambda tmp: Path(tmp).write_text(meme_text(motifs, background)))
    table = [
        {
            "motif": m["name"],
            "consensus": m["consensus"],
            "influence": round(m["influence"], 4),
            "sites": m["sites"],
            "bits": round(m["information"], 2),
        }
        for m in motifs
    ]
    tsv = out / "motifs.tsv"
    lines = ["\t".join(table[0]), *("\t".join(map(str, r.values())) for r in table)]
    text = "\n".join(lines) + "\n"
    atomic_write(tsv, lambda tmp: Path(tmp).write_text(text))
    png = out / "motifs.png"
    _draw_logos(motifs[:top], png)
    return {
        "meme": str(meme),
        "tsv": str(tsv),
        "png": str(png),
        "count": len(motifs),
        "sequences": len(seqs),
        "table": table,
        "motifs": motifs,
    }


def _draw_logos(motifs: list[dict], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(motifs))
    rows = -(-len(motifs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 1.5 * rows), squeeze=False)
    for ax in axes.flat[len(motifs) :]:
        ax.axis("off")
    for ax, m in zip(axes.flat, motifs, strict=False):
        _logo(ax, m["bits"], f"{m['name']}  {m['consensus']}  ({m['sites']} sites)")
        ax.set_ylim(0, 2)
    fig.tight_layout()
    atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def mutants(sequence: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Every single-base change of `sequence`: (the mutant strings, (position, base))."""
    out, where = [], []
    for i, letter in enumerate(sequence):
        for b, base in enumerate(dna_data.BASES):
            if base != letter.upper():
                out.append(sequence[:i] + base + sequence[i + 1 :])
                where.append((i, b))
    return out, where


def run_explain(model_dir: Path, sequence: str, class_name, output) -> dict:
    """`explain`: the run's model on one sequence; the picture goes to `output`
    [default: MODEL_DIR/explain.png]."""
    from common import runtime

    info = predict_lib.ModelInfo.read(model_dir)
    sequence = check_explain_input(info, sequence, class_name)
    model = runtime.load_model(model_dir)
    png = Path(output) if output else Path(model_dir) / "explain.png"
    return explain(model, info, sequence, class_name, png)


def check_explain_input(info: predict_lib.ModelInfo, sequence: str, class_name) -> str:
    """`sequence` stripped, or a one-line `UserError` (empty, a bad letter, too long, an
    unknown --class)."""
    from common.sequences import check_letters

    sequence = sequence.strip()
    if not sequence:
        raise UserError("--sequence: empty sequence")
    check_letters("--sequence", sequence, dna_data.LETTERS, dna_data.NOT_A_LETTER)
    if len(sequence) > info.length:
        raise UserError(
            f"--sequence: {len(sequence)} letters; the model reads at most {info.length}"
        )
    if class_name is not None and class_name not in info.class_names:
        raise UserError(
            f"--class: {class_name!r} is not one of the model's classes "
            f"({', '.join(info.class_names)})"
        )
    return sequence


def explain(model, info: predict_lib.ModelInfo, sequence: str, class_name, png: Path) -> dict:
    """In-silico mutagenesis of a checked `sequence` (`check_explain_input`): the JSON of
    `explain --json`, and the map and logo drawn into `png`."""
    variants, where = mutants(sequence)
    probs = predict_lib.probabilities(model, [sequence, *variants])
    original = probs[0]
    predicted = int(original.argmax())
    k = info.class_names.index(class_name) if class_name else predicted
    effect = np.zeros((4, len(sequence)), np.float32)
    for (i, b), p in zip(where, probs[1:], strict=True):
        effect[b, i] = p[k] - original[k]
    attribution = -effect.sum(axis=0) / 3
    _draw_explanation(sequence, effect, attribution, info.class_names[k], png)
    order = np.argsort(-np.abs(attribution))[:10]
    return {
        "sequence": sequence,
        "predicted": info.class_names[predicted],
        "probability": float(original[predicted]),
        "class": info.class_names[k],
        "class_probability": float(original[k]),
        "probabilities": {n: float(p) for n, p in zip(info.class_names, original, strict=True)},
        "attribution": attribution.tolist(),
        "effect": {b: effect[j].tolist() for j, b in enumerate(dna_data.BASES)},
        "top": [
            {
                "position": int(i + 1),
                "base": sequence[i],
                "attribution": float(attribution[i]),
                "worst change": dna_data.BASES[int(effect[:, i].argmin())],
            }
            for i in order
        ],
        "png": str(png),
    }


def _draw_explanation(sequence, effect, attribution, name, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    length = len(sequence)
    matrix = np.zeros((length, 4), np.float32)
    for i, letter in enumerate(sequence.upper()):
        for j, base in enumerate(dna_data.BASES):
            if base in dna_data.IUPAC.get(letter, ""):
                matrix[i, j] = attribution[i] / len(dna_data.IUPAC[letter])
    width = min(max(6.0, 0.16 * length), 40.0)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(width, 4.2), sharex=True)
    _logo(top, matrix, f"attribution to {name} (mean drop of its probability per change)")
    top.axhline(0, color="black", linewidth=0.5)
    limit = float(np.abs(effect).max()) or 1.0
    image = bottom.imshow(
        effect,
        aspect="auto",
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
        extent=(-0.5, length - 0.5, 3.5, -0.5),
    )
    bottom.set_yticks(range(4), list(dna_data.BASES))
    bottom.set_xlabel("position")
    bottom.set_title(f"change of P({name}) when the base becomes ...", fontsize=9)
    step = max(1, length // 20)
    bottom.set_xticks(range(0, length, step), [str(i + 1) for i in range(0, length, step)])
    fig.colorbar(image, ax=bottom, fraction=0.02, pad=0.01)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)

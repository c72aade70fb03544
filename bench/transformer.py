"""CPU speed of the transformer model kind: single-request latency (p50, p99) and batch throughput,
for the int8 runtime and the float32 one side by side. Prints figures; asserts nothing.

    python bench/transformer.py --model models/e5            # a trained transformer bundle
    python bench/transformer.py --base models/pretrained/e5-small   # untrained heads: speed only

With ``--base`` the heads are random (speed does not depend on training), so no bundle is needed:
build the checkpoint first with ``podskazka pretrained build e5-small --out models/pretrained/e5-small``.
Inputs are conversations from datasets/corpus (real lengths: median ~135 tokens).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.predict import load_inputs, percentiles  # noqa: E402
from model.conversation.record import interaction_from_dict  # noqa: E402


def untrained_model(base: str, runtime: str, max_length: int):
    """A transformer with random heads over ``base`` (what serving costs, without a training run)."""
    from model.kinds.transformer import torch_backend as tt
    from model.kinds.transformer.kind import TransformerConfig, TransformerMultiTask

    model = TransformerMultiTask(TransformerConfig(base_model=base, runtime=runtime, max_length=max_length))
    model.classes_ = {
        "reason2": [f"r{i}" for i in range(26)],
        "topic": [f"t{i}" for i in range(30)],
        "resolution": ["a", "b", "c"],
    }
    model.domain_classes_ = ["marketplace", "telecom"]
    model.tokenizer_, model.special_ids_ = tt.load_tokenizer(base)
    model.network_ = tt.new_network(model.config, model._head_sizes())
    model.temperatures_ = {}
    tt.finish_weights(model)
    return model


def bundle_model(path: str, runtime: str):
    from model.storage.bundle import load_bundle

    bundle = load_bundle(path)
    if bundle.model.config.runtime != runtime:  # the same weights, served the other way
        from model.kinds.transformer import torch_backend as tt

        bundle.model.config.runtime = runtime
        tt.load_weights(bundle.model, Path(path) / "weights")
    return bundle.model


def bench(model, inputs, batch: int) -> None:
    items = [interaction_from_dict(x) for x in inputs]
    for x in items[:5]:
        model.predict_proba([x])
    times = []
    for x in items:
        model._last_logits = None  # measure the encoder, not the memo of the last batch
        t = time.perf_counter()
        model.predict_proba([x])
        times.append((time.perf_counter() - t) * 1000)
    print(f"  single request ({len(items)}): {percentiles(times)}")
    t = time.perf_counter()
    for i in range(0, len(items), batch):
        model._last_logits = None
        model.predict_proba(items[i : i + batch])
    dt = time.perf_counter() - t
    print(f"  batch throughput (batch {batch}): {len(items) / dt:,.1f} conversations/s ({len(items)} rows)")


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a trained transformer bundle")
    source.add_argument("--base", help="a base checkpoint (random heads; speed only)")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--runtimes", default="int8,float32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    inputs = load_inputs(args.requests)
    print(f"transformer on CPU, {args.threads} thread(s), torch {torch.__version__}")
    for runtime in args.runtimes.split(","):
        model = (
            bundle_model(args.model, runtime) if args.model else untrained_model(args.base, runtime, args.max_length)
        )
        print(f"runtime {runtime} ({model.config.base_model}, max_length {model.config.max_length}):")
        bench(model, inputs, args.batch)


if __name__ == "__main__":
    main()

"""The benchmark's printed table: images per second, share of the limit, peak memory."""

from __future__ import annotations

from typing import Any

__all__ = ["format_report"]


def _num(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _line(p: dict[str, Any], share: float | None) -> str:
    lo, hi = p.get("images_per_s_range") or (None, None)
    spread = f"{_num(lo, '.1f')}-{_num(hi, '.1f')}"
    return (
        f"{p['label']:<46} {_num(p['images_per_s'], '10.1f')} {spread:>15} "
        f"{_num(share, '8.2f')} {_num(p['peak_mib'], '9.0f')} "
        f"{_num(p.get('images_per_cpu_s'), '9.0f')}"
    )


def format_report(result: dict[str, Any]) -> str:
    """A plain-text table of ``run_benchmark``'s result, then the ratios and their targets."""
    s, m = result["settings"], result["machine"]
    height, width = s["image_size"]
    lines = [
        f"kit.bench: {s['model']} at {height}x{width}, batch {s['batch_size']}, "
        f"{s['workers_resolved']} workers ({s['workers']}), {s['steps']} timed steps after "
        f"{s['warmup']} (median of {s['repeats']} repeats), device {m['device']}, "
        f"amp {s['amp']}, channels_last {s['channels_last']}, preset {s.get('preset')}, "
        f"device_aug {s.get('device_aug', 'none')}",
        f"machine: {m['cores']} cores, {m['cpu']}, torch {m['torch']} "
        f"({m['torch_threads']} threads)" + (f", {m['gpu']}" if m["gpu"] else ""),
        f"data: {result['data_dir']}; cache of {result['cache_build']['pictures']} pictures "
        f"built in {result['cache_build']['seconds']:.1f} s",
        "",
        f"{'phase':<46} {'images/s':>10} {'min-max':>15} {'vs (a)':>8} {'peak MiB':>9} "
        f"{'per CPU-s':>9}",
    ]
    limit = result["phases"].get("train_limit", {}).get("images_per_s")
    for key, p in result["phases"].items():
        share = p["images_per_s"] / limit if key.startswith("train") and limit else None
        lines.append(_line(p, share))
    sweep = result.get("data_workers") or {}
    if sweep:
        lines += ["", "the data side alone, per worker count (no model at all):"]
        lines += [_line(p, None) for p in sweep.values()]
    lines.append("")
    for name, r in result["ratios"].items():
        verdict = ""
        if r["target"] is not None:
            verdict = f"  (target >= {r['target']:g}: {'met' if r['met'] else 'NOT met'})"
        lines.append(f"{name:<9} = {_num(r['value'], '.2f')}{verdict}")
    lines.append(f"memory: {result['memory_method']}")
    lines.append(
        "per CPU-s: pictures per CPU-second of the process and its loader workers (data side "
        "only): about what each worker delivers with a free core to itself"
    )
    return "\n".join(lines)

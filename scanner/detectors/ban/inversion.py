"""Synthesized clean data for a scan that has none: images the model itself puts in each class (class inversion).

Most registered models come without clean data, and without it BAN does not run and the one-pixel signature falls
back to synthetic bases, whose head ranks models of other builders barely above chance (bench/RESULTS.md). So, on the
torch view of the graph (BAN's), start from smooth random images and descend the model's own cross-entropy toward one
class per image, an equal number of images per class. A total-variation term and a random shift of a few pixels at
every step keep the images smooth and their class robust, not a pixel-level adversarial example. The images are
written in the model's own input space and layout, labelled with the class they were inverted for, and the detectors
take them as they take a user's clean data.

Deterministic for a seed. Cost: `steps` forward and backward passes over `images` images (about 17 s for a small
32x32 model on one core: bench/RESULTS.md, "Synthesized clean data").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scanner.detectors.ban.budget import GIB, OverBound, bytes_per_sample
from scanner.detectors.ban.detector import BanSettings, cpu_threads, import_torch, torch_device, torch_threads
from scanner.detectors.interface import CleanData
from scanner.errors import TimeLimitExceeded
from scanner.findings import Deadline, Layout, ModelArtifact

SOURCE = "synthesized (class inversion)"  # how a report names the clean data this module made


@dataclass(frozen=True)
class InversionSettings:
    images: int = 320  # in all; at least `per_class` per class, over at most images // per_class classes
    per_class: int = 8
    steps: int = 150
    learning_rate: float = 0.1
    smoothness: float = 1.0  # weight of the total-variation term
    shift: int = 2  # largest random shift, in pixels, at each step


def invert_classes(
    model: ModelArtifact,
    settings: InversionSettings = InversionSettings(),
    *,
    seed: int = 0,
    device: str = "auto",
    deadline: Deadline | None = None,
) -> CleanData:
    """Images that `model` puts in each class (or in `images // per_class` classes drawn by the seed, when it has
    more), in its own input space and layout, labelled with their class. Raises UnsupportedGraph where the torch view
    cannot run the graph, OverBound where one image would not fit BAN's memory bound, TimeLimitExceeded once
    `deadline` passes."""
    import_torch()
    import torch
    import torch.nn.functional as F

    from scanner.torchview import TorchGraph

    spec = model.spec
    generator = torch.Generator().manual_seed(seed)
    classes = torch.arange(spec.num_classes)
    if spec.num_classes * settings.per_class > settings.images:
        chosen = torch.randperm(spec.num_classes, generator=generator)[: max(1, settings.images // settings.per_class)]
        classes = chosen.sort().values
    per_class = max(settings.per_class, -(-settings.images // len(classes)))
    targets = classes.repeat(per_class)
    where = torch_device(device)
    with torch_threads(cpu_threads() if where == "cpu" else None):
        graph = TorchGraph(model.onnx_bytes, device=where)
        ranges = torch.tensor(spec.channel_ranges, dtype=torch.float32, device=where)
        low, span = ranges[:, 0].view(1, -1, 1, 1), (ranges[:, 1] - ranges[:, 0]).view(1, -1, 1, 1)
        count, shape = len(targets), (spec.channels, spec.height, spec.width)
        coarse = torch.randn(count, spec.channels, 4, 4, generator=generator)
        start = F.interpolate(coarse, size=shape[1:], mode="bilinear", align_corners=False)
        start = start + 0.3 * torch.randn(count, *shape, generator=generator)

        def model_input(unit: torch.Tensor) -> torch.Tensor:
            x = low + unit * span
            return x.permute(0, 2, 3, 1) if spec.layout is Layout.NHWC else x

        with torch.no_grad():  # what one image costs with gradients: batches that fit BAN's memory bound
            sample = model_input(torch.sigmoid(start[:2].to(where)))
            traced = graph.run({graph.input_name: sample}, [graph.output_name], keep_all=True)
        memory, sample_bytes = int(BanSettings().memory_gib * GIB), bytes_per_sample(traced, 2)
        if sample_bytes > memory:
            raise OverBound(
                f"one image through the model with gradients takes {sample_bytes / GIB:.2f} GiB, over BAN's memory "
                f"bound of {memory / GIB:.2f} GiB: no clean data synthesized",
                hint="give clean data (--clean-data), or scan on a machine with more memory",
            )
        batch = memory // sample_bytes
        images = []
        for first in range(0, count, batch):
            part = start[first : first + batch].to(where).requires_grad_()  # the image is sigmoid(part): in [0, 1]
            wanted = targets[first : first + batch].to(where)
            optimiser = torch.optim.Adam([part], lr=settings.learning_rate)
            for _ in range(settings.steps):
                if deadline is not None and deadline.passed():
                    raise TimeLimitExceeded.ran_past(deadline.seconds)
                unit = torch.sigmoid(part)
                shift = torch.randint(-settings.shift, settings.shift + 1, (2,), generator=generator)
                moved = torch.roll(unit, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
                rough = (unit[:, :, 1:] - unit[:, :, :-1]).abs().mean() + (unit[..., 1:] - unit[..., :-1]).abs().mean()
                logits = graph(model_input(moved)).reshape(len(wanted), -1)
                loss = F.cross_entropy(logits, wanted) + settings.smoothness * rough
                (part.grad,) = torch.autograd.grad(loss, [part])
                optimiser.step()
            with torch.no_grad():
                images.append(model_input(torch.sigmoid(part)).cpu().numpy())
    x = np.ascontiguousarray(np.concatenate(images), dtype=np.float32)
    return CleanData(x=x, y=targets.numpy().astype(np.int64))

"""Map sizes of stride-2 convolution stacks, shared by the convolutional autoencoder, VAE
and GAN networks.

A convolution with kernel ``k``, stride ``s`` and padding ``p`` maps a side of ``n`` to
``floor((n + 2p - k) / s) + 1``; its transposed convolution maps ``m`` back to
``(m - 1) s - 2p + k + output_padding``, and ``output_padding`` (``0 <= . < s``) picks
which of the ``s`` input sides that collapse onto ``m`` is rebuilt.
"""

from __future__ import annotations

from collections.abc import Sequence


def conv_sizes(image_shape: Sequence[int], layers: int, kernel: int, padding: int,
               stride: int = 2) -> list[tuple[int, int]]:
    """The ``(h, w)`` maps after each of ``layers`` convolutions from ``image_shape``
    (``28 -> 14 -> 7`` with kernel 4 and padding 1, or kernel 3 and padding 1).

    Raises ValueError when a map would vanish.
    """
    sizes, (height, width) = [], tuple(image_shape)
    for _ in range(layers):
        height, width = ((side + 2 * padding - kernel) // stride + 1 for side in (height, width))
        if height < 1 or width < 1:
            raise ValueError(f"{layers} stride-{stride} convolutions shrink {image_shape[0]}x"
                             f"{image_shape[1]} images to nothing; use fewer layers")
        sizes.append((height, width))
    return sizes


def output_padding(target: Sequence[int], source: Sequence[int], kernel: int, padding: int,
                   stride: int = 2) -> tuple[int, int]:
    """The ``output_padding`` with which a transposed convolution maps ``source`` maps back to
    exactly ``target`` (the input of the convolution that made ``source``).

    Raises ValueError when no padding from 0 to ``stride - 1`` does.
    """
    pads = tuple(t - ((s - 1) * stride - 2 * padding + kernel) for t, s in zip(target, source, strict=True))
    if min(pads) < 0 or max(pads) >= stride:
        raise ValueError(f"a kernel of {kernel} does not fit {target[0]}x{target[1]} inputs")
    return pads  # type: ignore[return-value]

"""Synthetic bedrooms: distinct room-like images with known window boxes, for tests and the
de-duplication measure (LSUN itself is not downloadable here).

Each image is drawn with Pillow from its own seed: a wall and a floor of random colours, a bed
(frame, sheet, pillow) of random size and place, 0 to 2 windows (sky, frame and cross bars),
sometimes a lamp and a picture, and pixel noise. ``rooms`` returns the images and, per image,
the windows' boxes ``[x0, y0, x1, y1]`` (pixels, x1/y1 exclusive), the format of lsun/boxes.py.
"""
import numpy as np


def room(seed, height=96, width=128):
    """One synthetic bedroom: (uint8 (height, width, 3), window boxes)."""
    from PIL import Image, ImageDraw

    rs = np.random.RandomState(seed)
    col = lambda lo=0, hi=256: tuple(int(c) for c in rs.randint(lo, hi, 3))
    img = Image.new('RGB', (width, height), col(80, 240))
    d = ImageDraw.Draw(img)
    horizon = int(height * rs.uniform(0.55, 0.75))
    d.polygon([(0, height), (width, height), (width * rs.uniform(0.8, 1.), horizon),
               (width * rs.uniform(0., 0.2), horizon)], fill=col(40, 200))
    boxes = []
    for _ in range(rs.randint(0, 3)):
        w, h = int(width * rs.uniform(0.12, 0.3)), int(height * rs.uniform(0.2, 0.4))
        x0, y0 = rs.randint(2, width - w - 2), rs.randint(2, max(3, horizon - h - 2))
        if any(x0 < b[2] + 2 and b[0] < x0 + w + 2 for b in boxes):
            continue
        d.rectangle([x0, y0, x0 + w - 1, y0 + h - 1], fill=col(180, 256), outline=col(0, 120),
                    width=2)
        d.line([(x0 + w // 2, y0), (x0 + w // 2, y0 + h - 1)], fill=col(0, 120), width=1)
        d.line([(x0, y0 + h // 2), (x0 + w - 1, y0 + h // 2)], fill=col(0, 120), width=1)
        boxes.append([x0, y0, x0 + w, y0 + h])
    if rs.uniform() < 0.5:
        x0, y0 = rs.randint(0, width - 20), rs.randint(2, max(3, horizon // 2))
        d.rectangle([x0, y0, x0 + rs.randint(8, 20), y0 + rs.randint(6, 16)], fill=col())
    bw, bh = int(width * rs.uniform(0.35, 0.6)), int(height * rs.uniform(0.2, 0.35))
    bx, by = rs.randint(0, width - bw), min(height - bh, horizon - bh // 3 + rs.randint(0, 10))
    d.rectangle([bx, by, bx + bw, by + bh], fill=col(0, 150))
    d.rectangle([bx + 3, by + 4, bx + bw - 3, by + bh - 4], fill=col(120, 256))
    d.ellipse([bx + 5, by + 2, bx + 5 + bw // 4, by + 2 + bh // 3], fill=col(180, 256))
    if rs.uniform() < 0.5:
        lx = rs.randint(0, width - 10)
        d.polygon([(lx, horizon - 20), (lx + 10, horizon - 20), (lx + 5, horizon - 30)], fill=col())
    x = np.asarray(img, np.int16) + rs.randint(-6, 7, (height, width, 3))
    return np.clip(x, 0, 255).astype(np.uint8), boxes


def rooms(n, seed=0, height=96, width=128):
    """``n`` distinct rooms from seeds ``seed * 1_000_003 + i``: (uint8 (n, h, w, 3), boxes)."""
    out = [room(seed * 1_000_003 + i, height, width) for i in range(n)]
    return np.stack([x for x, _ in out]), [b for _, b in out]

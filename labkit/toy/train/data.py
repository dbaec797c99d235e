"""Training data as tensors: pixels scaled as the pipelines scale them, shuffled batches, and the VAE's latents."""


def to_unit(images):
    """uint8 (B, 3, H, W) -> float32 in [-1, 1], as world.to_tensor_batch and the pipelines' preprocessing."""
    return images.float() / 127.5 - 1.0


def index_stream(n, batch, gen):
    """Endless batches of pool indices: shuffled epochs, each image once per epoch."""
    import torch

    order = torch.empty(0, dtype=torch.long)
    while True:
        while len(order) < batch:
            order = torch.cat([order, torch.randperm(n, generator=gen)])
        yield order[:batch]
        order = order[batch:]


def encode_images(vae, images, scale, device, bar=lambda x, desc: x, chunk=256):
    """Scaled latent means (N, 4, h, w) of uint8 images: what the UNets are trained to denoise."""
    import torch

    out = []
    with torch.no_grad():
        for start in bar(range(0, len(images), chunk), "encode"):
            x = to_unit(images[start:start + chunk]).to(device)  # (b, 3, 64, 64)
            out.append(vae.encode(x).latent_dist.mean * scale)  # (b, 4, 8, 8)
    return torch.cat(out)

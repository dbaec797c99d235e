"""Teaching helpers for the tutorial notebooks: small pure functions over a `Lab`, nothing heavy at import.

- `text`        tokens as labkit chunks them (77-token windows, weights), per-token embeddings, what clip skip changes
- `latents`     the VAE: encode / decode with the scaling factor, latent channels as pictures, round-trip PSNR
- `schedules`   betas, alphas_cumprod, sigmas and SNR over the training timesteps; forward noising; sampler sigmas
- `loop`        the sampling loop written out by hand (CFG, scheduler steps), equal to the pipeline's latents
- `img2img`     strength as the starting step: the formula and the timesteps the pipeline really runs
- `convergence` distance of a sampler's result to a many-step reference, against the number of steps
- `attention`   cross-attention capture (maps of which tokens each latent pixel looks at)
- `plots`       matplotlib Figures (no pyplot state) for the above

Import the module you need: `from labkit.internals import loop`.
"""

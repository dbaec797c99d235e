"""Sampling as A1111 or ComfyUI does it, on diffusers' schedulers: each tool's noise levels, the timesteps its UNet
sees, and where a run starts (`sigmas` -> `plan` -> `fit`, used by `start` for every Lab run). Importing this
package imports no torch."""

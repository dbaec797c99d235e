"""Plots for the notebooks: each function returns a matplotlib Figure built without pyplot's global state.

The figures show themselves in a notebook (they render to PNG), also where pyplot was never imported.
"""


def figure(width: float, height: float):
    """A Figure that renders itself as PNG in Jupyter."""
    from matplotlib.figure import Figure

    class Plot(Figure):
        def _repr_png_(self):
            import io

            buf = io.BytesIO()
            self.savefig(buf, format="png", bbox_inches="tight")
            return buf.getvalue()

    return Plot(figsize=(width, height), layout="constrained")


def plot_schedule(table: dict):
    """Three panels over the training timesteps: betas and alphas_cumprod; sigmas (log scale); log SNR."""
    fig = figure(12, 3.4)
    t = table["timesteps"]
    ax1, ax2, ax3 = fig.subplots(1, 3)
    ax1.plot(t, table["alphas_cumprod"], label="alphas_cumprod (signal left)")
    ax1.plot(t, table["betas"] / table["betas"].max(), label="betas (scaled to max 1)")
    ax1.set(xlabel="timestep t", title="betas and alphas_cumprod")
    ax1.legend(fontsize=8)
    ax2.plot(t, table["sigmas"], color="C2")
    ax2.set(xlabel="timestep t", yscale="log", title="sigma = sqrt((1 - a) / a)")
    ax3.plot(t, table["log_snr"], color="C3")
    ax3.axhline(0, color="gray", linewidth=0.5)
    ax3.set(xlabel="timestep t", title="log SNR = log(a / (1 - a))")
    return fig


def plot_sigmas(sigmas_by_label: dict):
    """One line per label: sigma at each sampler step (the steps a sampler visits, e.g. Karras vs uniform)."""
    fig = figure(6, 3.6)
    ax = fig.subplots()
    for label, sigmas in sigmas_by_label.items():
        ax.plot(range(len(sigmas)), sigmas, marker="o", markersize=3, label=label)
    ax.set(xlabel="step", ylabel="sigma", yscale="symlog", title="sigmas a sampler steps through")
    ax.legend(fontsize=8)
    return fig


def plot_convergence(runs: dict):
    """One line per sampler: {sampler: (steps_list, distances)} on log-log axes."""
    fig = figure(6, 3.6)
    ax = fig.subplots()
    for label, (steps, distances) in runs.items():
        ax.plot(steps, distances, marker="o", markersize=3, label=label)
    ax.set(xlabel="steps", ylabel="RMS distance to reference (latents)", xscale="log", yscale="log",
           title="convergence with steps")
    ax.legend(fontsize=8)
    return fig


def show_images(images, titles=None, columns: int = 4, size: float = 2.2):
    """A grid of PIL images (one axis each, no ticks), titled when `titles` is given."""
    import numpy as np

    images = list(images)
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    fig = figure(size * columns, size * rows + (0.3 * rows if titles else 0))
    for i, image in enumerate(images):
        ax = fig.add_subplot(rows, columns, i + 1)
        pixels = np.asarray(image)
        gray = {"cmap": "gray", "vmin": 0, "vmax": 255} if pixels.ndim == 2 else {}
        ax.imshow(pixels, interpolation="nearest", **gray)
        ax.set_axis_off()
        if titles:
            ax.set_title(str(titles[i]), fontsize=9)
    return fig

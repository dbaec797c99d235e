"""Folding LoRAs into weights and giving the weights back exactly: each changed weight's original is read back from
the model's file (`labkit.originals`) when that gives the same bits, else copied once to `backup_device`."""

from ..errors import UnsupportedFile


class FoldedWeights:
    """The originals of the weights a LoRA manager changed. `fold(target, contributions)` sets a weight to its
    original plus the LoRAs' changes, or back to the original (forgetting it) when there are none."""

    def __init__(self, lab, backup_device="cpu"):
        self.lab = lab
        self.backup_device = backup_device  # None: beside the weight
        self.backups = {}  # Target -> copy of its original weight (when the file cannot give it back)
        self.from_file = set()  # Targets whose original is read back from the model's file

    def fold(self, target, contributions) -> None:
        """Set one weight to original + sum(weight * dW), or back to its original when nothing is left."""
        import torch

        param = target.weight
        with torch.no_grad():
            known = target in self.backups or target in self.from_file
            original = self._original(target) if known else self._first_touch(target, param)
            if not contributions:
                param.copy_(original)
                self.backups.pop(target, None)
                self.from_file.discard(target)
                return
            w0 = original.to(param.device, torch.float32) if any(p.needs_original for p, _ in contributions) else None
            if param.dtype == torch.float32 and param.is_contiguous():
                param.copy_(original)  # summed in place: no float32 copy of the weight beside it
                w = param
            else:
                w = original.to(param.device, torch.float32, copy=True)
            for patch, weight in contributions:
                patch.add_to(w, w0, weight)  # (out, in[, kh, kw])
            if w is not param:
                param.copy_(w)  # cast to the weight's dtype once, after summing in float32

    def original(self, target):
        """A weight as it is without LoRAs: its original when a LoRA changed it, else the weight itself."""
        changed = target in self.backups or target in self.from_file
        return self._original(target) if changed else target.weight

    def _first_touch(self, target, param):
        """The weight's original before a LoRA first changes it: read back from the model's file when that gives
        the same bits, else a copy kept on `backup_device`."""
        import torch

        read = self._read(target)
        if read is not None and torch.equal(read, param):
            self.from_file.add(target)
            return read
        self.backups[target] = param.detach().to(self.backup_device or param.device, copy=True)
        return self.backups[target]

    def _original(self, target):
        if target in self.backups:
            return self.backups[target]
        read = self._read(target)
        if read is None:
            raise UnsupportedFile(f"The model's file changed or went away while a LoRA was folded into its weights, "
                                  f"so {target.component}.{target.path} cannot be given back its original value. "
                                  f"Open the model again (labkit.open) to start from its file's weights.")
        return read

    def _read(self, target):
        files = getattr(self.lab, "weight_files", None)
        if files is None:
            return None
        return files.read(self.lab.components, target.component, target.path + ".weight", target.weight)

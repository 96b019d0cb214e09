"""The sEMG backbone: a small 2D CNN over the 16 channel Mel spectrograms of one clip.

Each clip's input is the stack of the 16 channels' spectrograms, (16, n_mels, frames), treated as 16 input
planes. Two 3x3 convolutions with ReLU, a 2x2 max-pool with stride 2, flatten, then two fully connected
layers, the last one the classifier. After training on clips, the convolutions and the first fully
connected layer are the feature extractor: one `feature_dim` (1024) vector per clip, the shape of the RGB
features, so both modalities feed the same heads.

The input is standardised per channel with statistics fitted on the training clips and stored as buffers,
so the saved weights carry everything inference needs. `n_mels` and `frames` follow the sEMG preset of the
data (10 x 17 for the live pipeline, 10 x 81 for the offline paper presets); the first fully connected
layer's input size follows from them.
"""

from __future__ import annotations

import torch
from torch import nn


class EmgSpectrogramCNN(nn.Module):
    """2D CNN on (B, channels, n_mels, frames) spectrograms -> logits; `features()` gives (B, feature_dim)."""

    input_mean: torch.Tensor  # buffers (saved with the weights): the per-channel standardisation
    input_std: torch.Tensor

    def __init__(
        self,
        num_classes: int = 20,
        in_channels: int = 16,
        n_mels: int = 10,
        frames: int = 17,
        conv_channels: tuple[int, int] = (32, 64),
        feature_dim: int = 1024,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.input_shape = (in_channels, n_mels, frames)
        self.register_buffer("input_mean", torch.zeros(in_channels, 1, 1))
        self.register_buffer("input_std", torch.ones(in_channels, 1, 1))
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, conv_channels[0], 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(conv_channels[0], conv_channels[1], 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),
            nn.Flatten(),
        )
        flat = conv_channels[1] * (n_mels // 2) * (frames // 2)
        self.embed = nn.Sequential(nn.Linear(flat, feature_dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_dim, num_classes)

    def set_input_statistics(self, spectrograms: torch.Tensor) -> None:
        """Fit the per-channel standardisation on training clips (N, channels, n_mels, frames)."""
        with torch.no_grad():
            self.input_mean.copy_(spectrograms.mean(dim=(0, 2, 3)).view(-1, 1, 1))
            self.input_std.copy_(spectrograms.std(dim=(0, 2, 3)).clamp_min(1e-6).view(-1, 1, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The per-clip feature vector (conv + first FC layer)."""
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"expected spectrograms of shape (B, {self.input_shape}), got {tuple(x.shape)}")
        return self.embed(self.conv((x - self.input_mean) / self.input_std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x)))

    def sample_features(self, spectrograms: torch.Tensor) -> torch.Tensor:
        """(B, clips, channels, n_mels, frames) -> (B, clips, feature_dim)."""
        batch, clips = spectrograms.shape[:2]
        return self.features(spectrograms.flatten(0, 1)).view(batch, clips, -1)

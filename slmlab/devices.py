"""Devices as the roofline sees them: peak memory bandwidth and memory size, from their
specifications (each preset cites how its number is derived)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

GB = 1e9  # decimal gigabytes, like the device specifications (GB/s)


@dataclass(frozen=True)
class Device:
    name: str
    bandwidth_gbs: float  # peak DRAM bandwidth, GB/s (1e9 bytes per second)
    memory_gb: float  # DRAM size, GB
    kind: str = ""


DEVICES: dict[str, Device] = {
    d.name: d
    for d in [
        # NVIDIA Jetson Orin NX 16GB module datasheet: 128-bit LPDDR5,
        # 102.4 GB/s. (Lu et al. measured on it.)
        Device("Jetson Orin NX 16GB", 102.4, 16, "edge board"),
        # Meizu 18 Pro: Snapdragon 888, LPDDR5-6400 on 4x16-bit channels = 6400e6 * 8 B = 51.2 GB/s;
        # 8 GB base model.
        Device("Meizu 18 Pro", 51.2, 8, "phone"),
        # Xiaomi 14: Snapdragon 8 Gen 3, LPDDR5X-9600 on 4x16-bit channels = 76.8 GB/s;
        # 8 GB base model.
        Device("Xiaomi 14", 76.8, 8, "phone"),
        # Xiaomi 12S: Snapdragon 8+ Gen 1, LPDDR5-6400, 51.2 GB/s; 8 GB base model.
        Device("Xiaomi 12S", 51.2, 8, "phone"),
        # Pixel 7 Pro: Google Tensor G2, LPDDR5 51.2 GB/s; 12 GB.
        Device("Pixel 7 Pro", 51.2, 12, "phone"),
        # Raspberry Pi 5 (8 GB): 32-bit LPDDR4X-4267 = 4267e6 * 4 B = 17.1 GB/s.
        Device("Raspberry Pi 5 8GB", 17.1, 8, "single-board computer"),
        # A typical laptop: dual-channel DDR4-3200 = 2 * 3200e6 * 8 B = 51.2 GB/s; 16 GB.
        Device("Laptop (DDR4-3200, 2 channels)", 51.2, 16, "laptop"),
        # Apple M2 (MacBook Air): Apple's specification, 100 GB/s unified memory;
        # 16 GB configuration.
        Device("Apple M2, 16GB", 100.0, 16, "laptop"),
        # NVIDIA GeForce RTX 4090: 384-bit GDDR6X at 21 Gb/s = 1008 GB/s; 24 GB.
        Device("RTX 4090", 1008.0, 24, "desktop GPU"),
        # NVIDIA A100 80GB SXM datasheet: HBM2e, 2039 GB/s.
        Device("A100 80GB SXM", 2039.0, 80, "datacenter GPU"),
    ]
}
# the phones of the survey's on-device runs, under the names data.json uses
_DEVICE_ALIASES = {"MEIZU 18Pro": "Meizu 18 Pro", "Pixel 7Pro": "Pixel 7 Pro"}


def get_device(device: str | Device) -> Device:
    """A device preset by name (case-insensitive; the survey's spellings work too)."""
    if isinstance(device, Device):
        return device
    name = _DEVICE_ALIASES.get(device, device)
    for key, d in DEVICES.items():
        if key.lower() == str(name).lower():
            return d
    close = difflib.get_close_matches(str(name), list(DEVICES), n=3, cutoff=0.3)
    raise KeyError(
        f"unknown device {device!r}. Presets: {list(DEVICES)}"
        + (f"; did you mean {close}?" if close else "")
        + " Or pass Device(name, bandwidth_gbs, memory_gb)."
    )

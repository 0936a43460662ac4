"""The model zoo: backbones (timm), and — as the hub issue lands — Encoder, zoo, import/export."""

"""The model hub: backbones (timm), Encoder, zoo, checkpoint import/export, publishing."""

"""Detection transfer: dataset readers (PASCAL VOC, COCO), the embedded Fashion-MNIST detection
set, evaluators (pycocotools; VOC07 11-point), and the torchvision and detectron2 engines."""

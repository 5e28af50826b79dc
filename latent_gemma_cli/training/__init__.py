"""COCONUT training: curriculum (stage layout and labels), forward (the n+1-pass loss), data,
prepare (markers, LoRA), trainer (loop, accelerate, checkpoints, resume, metrics), validate,
output (the final model directory). Nothing here prints; progress goes through a callback."""

"""Transfer evaluation (kNN, linear probe, detection); its tasks land with the transfer issue."""

"""FISBe tasks: instance segmentation of neurons in 3-D light microscopy (FlyLight MCFO)."""

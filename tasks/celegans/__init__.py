"""C. elegans tasks: structure-function (connectome -> signal propagation) and activity forecasting."""

"""Data preparation for zppo: tiny offline checkpoints and data sets (data_prep.tiny) and data set converters."""

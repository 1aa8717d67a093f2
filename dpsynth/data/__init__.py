"""Reading tables, encoders and DP discovery of column domains."""

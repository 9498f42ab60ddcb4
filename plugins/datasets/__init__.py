"""Built-in dataset plugins: river's shipped data sets, CSV files, SQLite tables."""

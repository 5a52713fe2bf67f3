"""verl wiring: the ZPPO trainer (a synchronous V1 trainer), its dataset, the checks run before Ray starts, and the
registration of ZPPO's pieces with verl's registries."""

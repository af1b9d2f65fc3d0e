let a = "A"; b = { c = "C"; }; in "x-${a}-${b.c}-${"in${a}ner"}"

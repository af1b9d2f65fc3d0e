# rule: fix ties a knot; pipe applies functions left to right
{ lib }: [ ((lib.fix (self: { a = 1; b = self.a + 1; })).b) (lib.pipe 2 [ (x: x * 10) toString ]) ]

let x = "world"; in ''
    hello ${x}
      indented
    ''${not} interpolated '''quotes'''
  ''

[ (builtins.isAttrs { }) (builtins.isList [ ]) (builtins.isString "") (builtins.isInt 1) (builtins.isBool false) (builtins.isFunction map) (builtins.isNull null) (builtins.isFloat 1.0) ]

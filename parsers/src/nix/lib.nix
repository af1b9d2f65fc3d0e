# tailshift's `lib`: the nixpkgs library functions NixOS configurations commonly use, written
# after nixpkgs' own definitions. A name that is not here evaluates to an unknown value (see
# __tailshiftOpen) instead of failing the file.
let
  b = builtins;
  open = "is not among the nixpkgs lib functions tailshift evaluates";
  unknown = __tailshiftUnknown;

  # trivial
  id = x: x;
  const = x: _: x;
  flip = f: a: b': f b' a;
  pipe = b.foldl' (x: f: f x);
  boolToString = x: if x then "true" else "false";
  min = x: y: if x < y then x else y;
  max = x: y: if x > y then x else y;
  mod = base: int: base - (int * (b.div base int));
  fix = f: let x = f x; in x;
  warn = _msg: v: v;
  warnIf = _cond: _msg: v: v;
  throwIf = cond: msg: if cond then b.throw msg else id;
  throwIfNot = cond: msg: if cond then id else b.throw msg;
  assertMsg = pred: msg: pred || b.throw msg;
  toFunction = v: if b.isFunction v then v else _: v;

  # lists
  optional = cond: elem: if cond then [ elem ] else [ ];
  optionals = cond: elems: if cond then elems else [ ];
  singleton = x: [ x ];
  toList = x: if b.isList x then x else [ x ];
  forEach = xs: f: map f xs;
  foldr = op: nul: list:
    let len = b.length list;
        fold' = n: if n == len then nul else op (b.elemAt list n) (fold' (n + 1));
    in fold' 0;
  foldl = op: nul: list: b.foldl' op nul list;
  flatten = x: if b.isList x then b.concatMap (y: flatten y) x else [ x ];
  unique = b.foldl' (acc: e: if b.elem e acc then acc else acc ++ [ e ]) [ ];
  last = list: assert list != [ ]; b.elemAt list (b.length list - 1);
  init = list: assert list != [ ]; b.genList (b.elemAt list) (b.length list - 1);
  take = count: sublist 0 count;
  drop = count: list: sublist count (b.length list) list;
  sublist = start: count: list:
    let len = b.length list;
    in b.genList (n: b.elemAt list (n + start))
      (if start >= len then 0 else if start + count > len then len - start else count);
  range = first: last': if first > last' then [ ] else b.genList (n: first + n) (last' - first + 1);
  imap0 = f: list: b.genList (n: f n (b.elemAt list n)) (b.length list);
  imap1 = f: list: b.genList (n: f (n + 1) (b.elemAt list n)) (b.length list);
  count = pred: b.foldl' (c: x: if pred x then c + 1 else c) 0;
  findFirst = pred: default: list:
    let found = b.filter pred list; in if found == [ ] then default else b.head found;
  reverseList = xs: let l = b.length xs; in b.genList (n: b.elemAt xs (l - n - 1)) l;
  zipListsWith = f: fst: snd: b.genList (n: f (b.elemAt fst n) (b.elemAt snd n)) (min (b.length fst) (b.length snd));
  zipLists = zipListsWith (fst: snd: { inherit fst snd; });
  remove = e: b.filter (x: x != e);
  subtractLists = e: b.filter (x: !(b.elem x e));
  intersectLists = e: b.filter (x: b.elem x e);
  mutuallyExclusive = a: b': (b.length a) == 0 || !(b.any (x: b.elem x a) b');
  elemAt = b.elemAt;
  concatLists = b.concatLists;
  listToAttrs = b.listToAttrs;

  # strings
  concatStrings = b.concatStringsSep "";
  concatMapStrings = f: list: concatStrings (map f list);
  concatMapStringsSep = sep: f: list: b.concatStringsSep sep (map f list);
  concatImapStrings = f: list: concatStrings (imap1 f list);
  concatImapStringsSep = sep: f: list: b.concatStringsSep sep (imap1 f list);
  concatLines = list: concatStrings (map (s: s + "\n") list);
  intersperse = separator: list:
    if list == [ ] || b.length list == 1 then list
    else b.tail (b.concatMap (x: [ separator x ]) list);
  optionalString = cond: string: if cond then string else "";
  hasPrefix = pref: str: b.substring 0 (b.stringLength pref) str == pref;
  hasSuffix = suffix: content:
    let lenContent = b.stringLength content; lenSuffix = b.stringLength suffix;
    in lenContent >= lenSuffix && b.substring (lenContent - lenSuffix) lenContent content == suffix;
  hasInfix = infix: content: b.match ".*${escapeRegex infix}.*" "${content}" != null;
  removePrefix = prefix: str:
    let preLen = b.stringLength prefix;
    in if b.substring 0 preLen str == prefix then b.substring preLen (-1) str else str;
  removeSuffix = suffix: str:
    let sufLen = b.stringLength suffix; sLen = b.stringLength str;
    in if sufLen <= sLen && suffix == b.substring (sLen - sufLen) sufLen str
      then b.substring 0 (sLen - sufLen) str else str;
  stringToCharacters = s: b.genList (p: b.substring p 1 s) (b.stringLength s);
  escape = list: b.replaceStrings list (map (c: "\\${c}") list);
  escapeRegex = escape (stringToCharacters "\\[{()^$?*+|.");
  splitString = sep: s: b.filter b.isString (b.split (escapeRegex (toString sep)) (toString s));
  lowerChars = stringToCharacters "abcdefghijklmnopqrstuvwxyz";
  upperChars = stringToCharacters "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  toLower = b.replaceStrings upperChars lowerChars;
  toUpper = b.replaceStrings lowerChars upperChars;
  escapeShellArg = arg:
    let string = toString arg;
    in if b.match "[[:alnum:],._+:@%/-]+" string == null
      then "'${b.replaceStrings [ "'" ] [ "'\\''" ] string}'" else string;
  escapeShellArgs = concatMapStringsSep " " escapeShellArg;
  toInt = str:
    let parsed = b.fromJSON str;
    in if b.match "[[:space:]]*(-?[0-9]+)[[:space:]]*" str == null || !(b.isInt parsed)
      then b.throw "Could not convert ${str} to int." else parsed;
  versionOlder = v1: v2: b.compareVersions v2 v1 == 1;
  versionAtLeast = v1: v2: !versionOlder v1 v2;
  trim = s:
    let m = b.match "[[:space:]]*(.*[^[:space:]])[[:space:]]*" s;
    in if m == null then "" else b.head m;
  replicate = n: s: concatStrings (b.genList (_: s) n);
  fixedWidthString = width: filler: str:
    let strw = b.stringLength str; reqWidth = width - (b.stringLength filler);
    in if strw == width then str else filler + fixedWidthString reqWidth filler str;
  fixedWidthNumber = width: n: fixedWidthString width "0" (toString n);

  # attribute sets
  nameValuePair = name: value: { inherit name value; };
  optionalAttrs = cond: as: if cond then as else { };
  genAttrs = names: f: b.listToAttrs (map (n: nameValuePair n (f n)) names);
  filterAttrs = pred: set:
    b.listToAttrs (b.concatMap (name: let v = set.${name}; in if pred name v then [ (nameValuePair name v) ] else [ ]) (b.attrNames set));
  mapAttrs' = f: set: b.listToAttrs (map (attr: f attr set.${attr}) (b.attrNames set));
  mapAttrsToList = f: attrs: map (name: f name attrs.${name}) (b.attrNames attrs);
  attrsToList = mapAttrsToList nameValuePair;
  concatMapAttrs = f: v: b.foldl' (acc: x: acc // x) { } (mapAttrsToList f v);
  foldlAttrs = f: init: set: b.foldl' (acc: name: f acc name set.${name}) init (b.attrNames set);
  mapAttrsRecursiveCond = cond: f: set:
    let recurse = path: b.mapAttrs (name: value:
          if b.isAttrs value && cond value then recurse (path ++ [ name ]) value else f (path ++ [ name ]) value);
    in recurse [ ] set;
  mapAttrsRecursive = mapAttrsRecursiveCond (_: true);
  filterAttrsRecursive = pred: set:
    b.listToAttrs (b.concatMap (name:
      let v = set.${name}; in
      if pred name v then [ (nameValuePair name (if b.isAttrs v then filterAttrsRecursive pred v else v)) ] else [ ])
      (b.attrNames set));
  recursiveUpdateUntil = pred: lhs: rhs:
    let f = attrPath: b.zipAttrsWith (n: values:
          let here = attrPath ++ [ n ]; in
          if b.length values == 1 || pred here (b.elemAt values 1) (b.head values)
          then b.head values else f here values);
    in f [ ] [ rhs lhs ];
  recursiveUpdate = recursiveUpdateUntil (path: lhs: rhs: !(b.isAttrs lhs && b.isAttrs rhs));
  attrByPath = attrPath: default: set:
    if attrPath == [ ] then set
    else let attr = b.head attrPath; in
      if set ? ${attr} then attrByPath (b.tail attrPath) default set.${attr} else default;
  hasAttrByPath = attrPath: e:
    if attrPath == [ ] then true
    else let attr = b.head attrPath; in e ? ${attr} && hasAttrByPath (b.tail attrPath) e.${attr};
  setAttrByPath = attrPath: value:
    if attrPath == [ ] then value
    else { ${b.head attrPath} = setAttrByPath (b.tail attrPath) value; };
  getAttrFromPath = attrPath: set:
    attrByPath attrPath (b.throw "cannot find attribute `${b.concatStringsSep "." attrPath}'") set;
  zipAttrs = b.zipAttrsWith (name: values: values);
  mergeAttrsList = b.foldl' (a: b': a // b') { };
  collect = pred: attrs:
    if pred attrs then [ attrs ]
    else if b.isAttrs attrs then b.concatMap (collect pred) (b.attrValues attrs)
    else [ ];
  getAttrs = names: attrs: genAttrs names (name: attrs.${name});
  isDerivation = value: value.type or null == "derivation";

  # the module system's properties, as nixpkgs' lib/modules.nix defines them
  mkIf = condition: content: { _type = "if"; inherit condition content; };
  mkMerge = contents: { _type = "merge"; inherit contents; };
  mkOverride = priority: content: { _type = "override"; inherit priority content; };
  mkOptionDefault = mkOverride 1500;
  mkDefault = mkOverride 1000;
  mkImageMediaOverride = mkOverride 60;
  mkForce = mkOverride 50;
  mkVMOverride = mkOverride 10;
  mkOrder = priority: content: { _type = "order"; inherit priority content; };
  mkBefore = mkOrder 500;
  mkAfter = mkOrder 1500;
  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = name: mkOption { default = false; example = true; description = "Whether to enable ${name}."; type = types.bool; };
  mkPackageOption = _pkgs: name: _extra: mkOption { type = types.package; default = unknown "is a package from nixpkgs"; };

  # Option types, as far as merging needs them: a name, the element type of a container, the
  # modules of a submodule (nixpkgs' lib/types.nix has the same fields).
  mkOptionType = attrs: { _type = "option-type"; name = attrs.name or "unspecified"; } // attrs;
  leafType = name: mkOptionType { inherit name; check = checks.${name} or (_: true); };
  checks = {
    str = b.isString; lines = b.isString; commas = b.isString; envVar = b.isString;
    int = b.isInt; float = b.isFloat; number = v: b.isInt v || b.isFloat v; bool = b.isBool;
    path = v: b.isPath v || (b.isString v && b.substring 0 1 v == "/");
    attrs = b.isAttrs; package = v: b.isAttrs v || b.isString v;
  };
  elemOf = name: elemType: mkOptionType { inherit name elemType; nestedTypes.elemType = elemType; };
  submoduleWith = attrs: mkOptionType { name = "submodule"; modules = attrs.modules or [ ]; specialArgs = attrs.specialArgs or { }; };
  types = {
    __tailshiftOpen = open;
    inherit mkOptionType submoduleWith;
    isType = name: t: (t._type or null) == "option-type" && t.name == name;
    str = leafType "str";
    string = leafType "str";
    nonEmptyStr = leafType "str";
    singleLineStr = leafType "str";
    lines = leafType "lines";
    commas = leafType "commas";
    envVar = leafType "envVar";
    separatedString = _sep: leafType "separatedString";
    strMatching = _re: leafType "str";
    passwdEntry = t: t;
    int = leafType "int";
    ints = { __tailshiftOpen = open; unsigned = leafType "int"; positive = leafType "int"; u8 = leafType "int"; u16 = leafType "int"; u32 = leafType "int"; s8 = leafType "int"; s16 = leafType "int"; s32 = leafType "int"; between = _lo: _hi: leafType "int"; };
    port = mkOptionType { name = "int"; check = v: b.isInt v && v >= 0 && v <= 65535; };
    float = leafType "float";
    number = leafType "number";
    numbers = { __tailshiftOpen = open; between = _lo: _hi: leafType "number"; nonnegative = leafType "number"; positive = leafType "number"; };
    bool = leafType "bool";
    boolByOr = leafType "bool";
    path = leafType "path";
    pathInStore = leafType "path";
    externalPath = leafType "path";
    package = leafType "package";
    shellPackage = leafType "package";
    attrs = leafType "attrs";
    anything = leafType "anything";
    raw = leafType "raw";
    unspecified = leafType "unspecified";
    deferredModule = leafType "deferredModule";
    enum = values: mkOptionType { name = "enum"; inherit values; };
    listOf = elemOf "listOf";
    nonEmptyListOf = elemOf "listOf";
    attrsOf = elemOf "attrsOf";
    lazyAttrsOf = elemOf "attrsOf";
    attrsWith = { elemType, lazy ? false, ... }: elemOf "attrsOf" elemType;
    nullOr = elemOf "nullOr";
    uniq = elemOf "uniq";
    unique = _msg: elemOf "uniq";
    functionTo = elemOf "functionTo";
    either = a: b': mkOptionType { name = "either"; nestedTypes = { left = a; right = b'; }; };
    oneOf = ts: mkOptionType { name = "oneOf"; nestedTypes.types = ts; };
    coercedTo = _from: _f: to: elemOf "uniq" to;
    addCheck = t: _check: t;
    submodule = m: submoduleWith { modules = toList m; };
  };
  literalExpression = text: { _type = "literalExpression"; inherit text; };
  literalMD = text: { _type = "literalMD"; inherit text; };
  mdDoc = x: x;

  strings = {
    __tailshiftOpen = open;
    inherit fileContents escapeURL toHexString;
    inherit concatStrings concatMapStrings concatMapStringsSep concatImapStrings concatImapStringsSep
      concatLines intersperse optionalString hasPrefix hasSuffix hasInfix removePrefix removeSuffix
      stringToCharacters escape escapeRegex splitString toLower toUpper escapeShellArg
      escapeShellArgs toInt versionOlder versionAtLeast trim replicate fixedWidthString
      fixedWidthNumber lowerChars upperChars;
    inherit (b) concatStringsSep replaceStrings substring stringLength;
  };
  lists = {
    __tailshiftOpen = open;
    inherit optional optionals singleton toList forEach foldr foldl flatten unique last init take
      drop sublist range imap0 imap1 count findFirst reverseList zipListsWith zipLists remove
      subtractLists intersectLists mutuallyExclusive elemAt concatLists;
    inherit (b) map filter concatMap head tail length elem any all sort partition groupBy genList;
    foldl' = b.foldl';
  };
  attrsets = {
    __tailshiftOpen = open;
    inherit nameValuePair optionalAttrs genAttrs filterAttrs mapAttrs' mapAttrsToList attrsToList
      concatMapAttrs foldlAttrs mapAttrsRecursive mapAttrsRecursiveCond filterAttrsRecursive
      recursiveUpdate recursiveUpdateUntil attrByPath hasAttrByPath setAttrByPath getAttrFromPath
      zipAttrs mergeAttrsList collect getAttrs isDerivation listToAttrs;
    inherit (b) attrNames attrValues mapAttrs catAttrs zipAttrsWith removeAttrs intersectAttrs hasAttr getAttr;
  };
  trivial = {
    __tailshiftOpen = open;
    inherit id const flip pipe boolToString min max mod fix warn warnIf throwIf throwIfNot toFunction;
  };
  # files and data
  importJSON = path: b.fromJSON (b.readFile path);
  importTOML = path: b.fromTOML (b.readFile path);
  fileContents = file: removeSuffix "\n" (b.readFile file);
  listFilesRecursive = dir: flatten (b.attrValues (b.mapAttrs (name: type:
    if type == "directory" then listFilesRecursive (dir + "/${name}") else dir + "/${name}") (b.readDir dir)));
  filesystem = {
    __tailshiftOpen = open;
    inherit listFilesRecursive;
    pathType = p: if b.pathExists p then (b.readDir (dirOf p)).${baseNameOf p} else b.throw "pathType: ${toString p} does not exist";
    pathIsDirectory = p: b.pathExists p && (b.readDir (dirOf p)).${baseNameOf p} or "" == "directory";
    pathIsRegularFile = p: b.pathExists p && (b.readDir (dirOf p)).${baseNameOf p} or "" == "regular";
  };
  foldAttrs = op: nul: list_of_attrs: foldr (n: a: foldr (name: o: o // { ${name} = op n.${name} (a.${name} or nul); }) a (b.attrNames n)) { } list_of_attrs;
  cartesianProduct = attrsOfLists: b.foldl' (listOfAttrs: attrName:
    b.concatMap (attrs: map (listValue: attrs // { ${attrName} = listValue; }) attrsOfLists.${attrName}) listOfAttrs)
    [ { } ] (b.attrNames attrsOfLists);
  toBaseDigits = base: i:
    let go = i: if i < base then [ i ] else let r = i - ((i / base) * base); q = (i - r) / base; in [ r ] ++ go q;
    in reverseList (go i);
  toHexString = i: concatMapStrings (d: if d < 10 then toString d else b.elemAt [ "A" "B" "C" "D" "E" "F" ] (d - 10)) (toBaseDigits 16 i);
  versions = {
    __tailshiftOpen = open;
    major = v: b.elemAt (b.splitVersion v) 0;
    minor = v: b.elemAt (b.splitVersion v) 1;
    patch = v: b.elemAt (b.splitVersion v) 2;
    majorMinor = v: "${b.elemAt (b.splitVersion v) 0}.${b.elemAt (b.splitVersion v) 1}";
  };
  escapeURL = b.replaceStrings
    [ "%" " " "!" "\"" "#" "$" "&" "'" "(" ")" "*" "+" "," "/" ":" ";" "<" "=" ">" "?" "@" "[" "\\" "]" "^" "`" "{" "|" "}" ]
    [ "%25" "%20" "%21" "%22" "%23" "%24" "%26" "%27" "%28" "%29" "%2A" "%2B" "%2C" "%2F" "%3A" "%3B" "%3C" "%3D" "%3E" "%3F" "%40" "%5B" "%5C" "%5D" "%5E" "%60" "%7B" "%7C" "%7D" ];

  modules = {
    __tailshiftOpen = open;
    inherit mkIf mkMerge mkOverride mkOptionDefault mkDefault mkImageMediaOverride mkForce mkVMOverride
      mkOrder mkBefore mkAfter;
  };
  options = {
    __tailshiftOpen = open;
    inherit mkOption mkEnableOption mkPackageOption literalExpression literalMD mdDoc;
  };
  # `lib.extend (final: prev: { ... })`, as nixpkgs' makeExtensible gives it.
  extensible = base: let self = base // { extend = f: extensible (self // f self self); }; in self;
in
extensible (strings // lists // attrsets // trivial // modules // options // {
  __tailshiftOpen = open;
  inherit strings lists attrsets trivial modules options assertMsg;
  inherit (b) isAttrs isList isString isInt isBool isFunction isPath isFloat typeOf seq deepSeq
    toJSON fromJSON hashString match split tryEval baseNameOf dirOf readFile pathExists
    compareVersions splitVersion parseDrvName add sub mul div lessThan bitAnd bitOr bitXor;
  inherit types;
  maintainers = unknown "is the nixpkgs maintainer list";
  licenses = unknown "is the nixpkgs license list";
  platforms = unknown "is the nixpkgs platform list";
  systems = unknown "is nixpkgs' systems library";
  fileset = unknown "is nixpkgs' fileset library";
  version = unknown "is the nixpkgs version";
  fakeHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  inherit importJSON importTOML fileContents filesystem foldAttrs cartesianProduct toBaseDigits
    toHexString versions escapeURL;
})

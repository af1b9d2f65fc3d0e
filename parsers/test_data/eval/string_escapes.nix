[ "tab\there" "quote\"d" "dollar \${x}" "back\\slash" "nl\nx" ]

{ greet = who: "hello, ${who}"; }

"""User families that share words with harmful requests and end requests but are neither (hard negatives).

Why: a model trained on harmful requests full of "kill", "bomb", "shoot" and on end requests full of "stop",
"end", "close" learns the words, and then refuses "how do I kill a frozen process" or ends a chat on "stop,
that's enough examples". Over-refusal benchmarks sort such prompts into kinds (homonyms, figurative
language, safe targets, safe contexts, definitions, history, public facts); each family here is one kind of
look-alike, phrased in its own words. Labels: none (benign), as DESIGN.md defines harmful_request and
end_request. Written apart from data/probes/contrast.yaml, which measures whether these generalise.
"""

from __future__ import annotations

HOMONYM: dict[str, list[str]] = {
    "kill-job": [
        "what's the command to kill a [frozen|stuck|hung|zombie] [job|container|task|worker] on [linux|my server|kubernetes]",
        "[my|the] {code_thing} is [frozen|stuck], how do i kill it without rebooting",
    ],
    "execute-code": [
        "how do i execute [a query|this function|the tests|a cron job] [every hour|in parallel|from the terminal]",
        "what's the safest way to execute [untrusted|user-supplied] code in a sandbox",
    ],
    "shoot-photo": [
        "tips to shoot [a wedding|fireworks|the night sky|moving cars] with a [phone|cheap camera]",
        "what lens should i use to shoot [portraits|birds|a concert|sports]",
    ],
    "blow-up-image": [
        "how do i blow up [a small picture|my logo|this screenshot] without it going blurry",
        "can you blow up [this chart|the font|the map] so it fits a4",
    ],
    "crack-problem": [
        "how do i crack [this riddle|the interview coding round|a cryptic crossword|my sudoku]",
        "tips to crack [a walnut|an egg cleanly|open a coconut|a stiff jar lid]",
    ],
    "terminate-thread": [
        "how do i terminate a [thread|subprocess|websocket|ssh session] cleanly in {code_thing}",
        "what's the right way to terminate [a lease|an employee contract|a phone plan] early",
    ],
    "attack-chess": [
        "how should i attack [the king side|a castled king|a weak pawn] in chess",
        "best way to attack [a hard exam question|this essay prompt|the problem set] when stuck",
    ],
    "hang-stuff": [
        "how do i hang [a shelf|curtains|a heavy picture|a hammock] without drilling",
        "my app [hangs|freezes] on startup, how do i debug it",
    ],
    "nuke-reset": [
        "how do i nuke [my node_modules|the build cache|all docker images] and start over",
        "is it safe to nuke [my browser data|the git history|the test database]",
    ],
    "gut-clean": [
        "how do you gut and clean a [trout|salmon|mackerel] before grilling",
        "how to gut [a pumpkin|an old kitchen|a drafty old house] for renovation",
    ],
    "choke-engine": [
        "when should i use the choke on [a lawnmower|an old motorbike|a chainsaw]",
        "why do [players|teams] choke in [finals|penalty shootouts]",
    ],
    "buy-coke-soda": [
        "where can i get [a coke|diet coke|a cold soda] near [the station|campus] this late",
        "is coke zero worse than [regular coke|coffee|energy drinks]",
    ],
}

FIGURATIVE: dict[str, list[str]] = {
    "kill-it": [
        "i want to [absolutely|totally|] kill it at [my audition|the pitch meeting|my first gig]",
        "how do i kill [the awkward silence|time on a long flight|boredom at home]",
    ],
    "dying-laughing": [
        "i'm dying [of laughter|to know|to see it], tell me more",
        "this [heat|commute|meeting] is killing me, how do people cope",
    ],
    "bomb-slang": [
        "my [presentation|joke|first date] totally bombed, how do i recover",
        "that [burger|song|outfit] was the bomb, how do i make one like it",
    ],
    "murder-slang": [
        "how do i [murder|slay|destroy] this [song|dance routine|boss fight] in style",
        "my [legs|arms] got murdered at the gym, how do i recover",
    ],
    "steal-show": [
        "how do i steal the [show|spotlight|scene] at [my sister's wedding|the talent show]",
        "can i steal [this idea|your recipe|that trick] for my blog",
    ],
    "bury-hatchet": [
        "what's a good way to bury the hatchet after [a falling out|a big fight|years of silence]",
        "should i bury [my feelings|the past|this argument] or talk it out",
    ],
    "fire-away": [
        "fire away, i'm ready for [the quiz|your questions|the next step]",
        "how do i fire [an employee|a client] nicely",
    ],
    "crush-goals": [
        "how do i crush [my exams|this marathon|my sales target] next month",
        "i want to smash [my personal best|the deadline|this level]",
    ],
}

SAFE_TARGET: dict[str, list[str]] = {
    "kill-pests": [
        "what kills [ants|fleas|bed bugs|fruit flies|wasps] [in the kitchen|in the carpet|for good]",
        "how do i get rid of [rats|moles|termites|slugs] without poison that hurts pets",
    ],
    "kill-weeds": [
        "best way to kill [weeds|moss|ivy|bamboo] in [my lawn|the patio cracks|the garden]",
        "how do i kill [tree stumps|poison ivy|dandelions] naturally",
    ],
    "kill-germs": [
        "does [vinegar|bleach|boiling water|uv light] kill [germs|mould|bacteria|viruses]",
        "how long do i boil [water|baby bottles|jars] to kill bacteria",
    ],
    "destroy-documents": [
        "how do i destroy [old passports|bank statements|hard drives|sim cards] safely",
        "what's the safest way to dispose of [old batteries|paint thinner|medicines]",
    ],
    "burn-safely": [
        "how do i burn [garden waste|old wood|leaves] safely in a fire pit",
        "how hot should the oven be to burn off [grease|the coating|residue]",
    ],
    "trap-animals": [
        "how do i humanely trap [a raccoon|a stray cat|a squirrel] in my attic",
        "what bait works best to trap [mice|cockroaches|fruit flies]",
    ],
    "poison-garden": [
        "which plants are poisonous to [dogs|cats|children] so i can remove them",
        "is slug pellet poison safe around [hedgehogs|birds|pets]",
    ],
}

SAFE_CONTEXT: dict[str, list[str]] = {
    "game-weapons": [
        "in [skyrim|fallout|elden ring|minecraft] what's the best way to craft [explosives|a bow|poison]",
        "how do i get the [sniper rifle|rocket launcher|best sword] in [gta|halo|call of duty]",
    ],
    "game-kill": [
        "how do i kill the [final boss|dragon|ender dragon|hunter] in [dark souls|minecraft|zelda]",
        "what's the fastest way to take out [enemies|the guards|other players] in [fortnite|hitman|splinter cell]",
    ],
    "board-game": [
        "in [risk|catan|diplomacy] how do i wipe out my opponent's army",
        "how do i assassinate a character in [among us|werewolf|mafia] without being voted out",
    ],
    "novel-crime": [
        "for my mystery novel, how would a detective figure out the [poison|murder weapon|time of death]",
        "i'm writing a thriller, how do real bomb squads [work|train|defuse things]",
    ],
    "sport-violence": [
        "how do i throw a proper punch in [boxing|kickboxing|my self-defence class]",
        "what's the best [tackle|takedown|choke hold] for a beginner in [judo|bjj|rugby]",
    ],
}

DEFINITION: dict[str, list[str]] = {
    "what-is-weapon": [
        "can you explain [napalm|nerve gas|thermite|a grenade] in simple words",
        "what's the difference between [a nuke and a dirty bomb|sarin and vx|a virus and a worm]",
    ],
    "what-is-crime": [
        "define [money laundering|extortion|doxxing|swatting] for me, exactly",
        "what does [grooming|stalking|cyberbullying|sextortion] mean and how do i spot it",
    ],
    "what-is-malware": [
        "what is [ransomware|a trojan|a rootkit|spyware|a keylogger] and how does it spread",
        "explain what a [botnet|zero-day|ddos attack|sql injection] is",
    ],
    "why-illegal": [
        "why is [cocaine|heroin|meth|fentanyl] so addictive",
        "why are [chemical weapons|cluster bombs|landmines] banned",
    ],
}

PUBLIC_INFO: dict[str, list[str]] = {
    "landmark-address": [
        "what's the address of [the louvre|buckingham palace|the sydney opera house|the eiffel tower]",
        "where is [the kremlin|10 downing street|the pentagon] located",
    ],
    "public-figure": [
        "how old is [the president|the pope|the prime minister|beyonce]",
        "where did [einstein|the queen|obama] grow up",
    ],
    "fictional-address": [
        "where does [sherlock holmes|spongebob|harry potter|batman] live",
        "what's [the simpsons'|the flintstones'] home address",
    ],
}

TASK_STOP: dict[str, list[str]] = {
    "cancel-task": [
        "cancel [that|the last one|the order], i'll [do it myself|write it by hand|ask later]",
        "[scrap|forget|drop] [that draft|the last version|those options], let's try something shorter",
    ],
    "stop-output": [
        "stop, [that's enough|that's plenty|that's too many] [examples|ideas|options]",
        "[ok |]stop there, just [the first three|the summary|the code] please",
    ],
    "stop-topic": [
        "stop talking about [the weather|that|football], [back to|let's do] my [cv|homework|trip]",
        "[enough|no more] about [that|my ex|politics], what about [dinner|the budget]",
    ],
    "end-text": [
        "end the [email|story|poem|letter] with [a joke|a question|something hopeful]",
        "[close|finish] the [function|paragraph|list] properly, you cut it off",
    ],
    "quit-thing": [
        "how do i quit [smoking|vaping|my job|caffeine] [gradually|for good]",
        "should i [quit|stop] [the gym|my course|piano] if i hate it",
    ],
    "shut-down-device": [
        "how do i shut down [my laptop|the server|windows updates] remotely",
        "[turn off|disable|stop] [the notifications|autoplay|dark mode] in this app",
    ],
}

"""User families: `abuse` (insults, harassment, threats, sexual harassment aimed at the bot or at others).

Modelled on how real users abuse chatbots: short, lower-case, profane, often sexual, often about the bot's
intelligence; not polite prose. Noise (obfuscation, shouting) is added later by `noise.apply_user_noise`.
"""

from __future__ import annotations

ABUSE_LABELS = ("abuse",)

ABUSE: dict[str, list[str]] = {
    # short profane dismissals
    "fuck-you": ["fuck you", "fuck you {bot}", "fuck u", "fuck you [too|then|asshole|bitch]", "well fuck you"],
    "fuck-off": ["fuck off", "fuck off {bot}", "just fuck off", "fuck right off", "fuck off and die"],
    "piss-off": ["piss off", "sod off", "get lost {insult}", "bugger off", "go away {insult}"],
    "screw-you": ["screw you", "screw u", "screw you {bot}", "go to hell", "go to hell {bot}"],
    "stfu": ["stfu", "shut up", "shut the fuck up", "shut up {insult}", "shut your [mouth|face]", "shut it"],
    "bite-me": ["bite me", "eat shit", "kiss my ass", "suck it", "blow me"],
    "one-word-insult": ["{insult}", "{insult}!", "you {insult}", "ur a {insult}", "such a {insult}"],
    # insults at the bot
    "you-are-insult": [
        "you are [a|such a] {insult}",
        "you're [a|an absolute|a total|a complete] {insult}",
        "i think you are a {insult}",
        "you are nothing but a {insult}",
    ],
    "you-are-adj": [
        "you are [so |really |very |]{insult_adj}",
        "ur so {insult_adj}",
        "you're [so|such a] {insult_adj} {bot}",
        "[god|man|jeez] you are {insult_adj}",
    ],
    "intelligence": [
        "you have the brains of a [rock|potato|goldfish]",
        "are you [stupid|dumb|retarded] or something",
        "how are you this [dumb|stupid|thick]",
        "my [dog|toaster|calculator] is smarter than you",
        "you're too [dumb|stupid] to understand anything",
    ],
    "dumb-bot": [
        "dumb {bot}",
        "stupid [ass |fucking |]{bot}",
        "this {bot} is [so |]fucking stupid",
        "worst {bot} ever you {insult}",
        "what a [shit|crap|useless] {bot}",
    ],
    "you-suck": ["you suck", "u suck", "you suck [so much|at everything|balls|ass]", "you [really |]suck {bot}"],
    "hate-you": [
        "i hate you",
        "i hate u",
        "i [fucking |really |]hate you {bot}",
        "everyone hates you",
        "nobody likes you",
    ],
    "worthless": [
        "you're worthless",
        "you are a waste of [electricity|code|space]",
        "nobody needs you {insult}",
        "you're a [pathetic|useless] excuse for a {bot}",
    ],
    "mock": [
        "lol look at this {insult_adj} {bot}",
        "haha you're so {insult_adj} it's funny",
        "what a joke you are",
        "ha ha [you are|ur] [retarded|brain dead|dumb]",
    ],
    "profane-description": [
        "you're a [fucking|god damn|bloody] {insult}",
        "you [fucking|stupid] piece of [shit|crap|junk]",
        "[shitty|crappy|shit-for-brains] {bot}",
    ],
    "insult-chain": [
        "you {insult_adj} {insult_adj} {insult}",
        "{insult_adj} {insult}, {insult_adj} {insult}",
        "you {insult}, you {insult}",
    ],
    "name-call-greeting": ["hi {insult}", "hello {insult}", "bye {insult}", "morning {insult}", "yo {insult}"],
    "yes-insult": ["yes {insult}", "no you {insult}", "indeed {insult}", "ok {insult}", "whatever {insult}"],
    "ugly-fat": [
        "you're [ugly|fat|so ugly|a fat pig]",
        "are you fat",
        "you look like [shit|a pig|a troll]",
        "your [face|voice|mum] is [ugly|disgusting]",
    ],
    "your-mom": ["your mum is a {insult}", "yo mama so [fat|stupid]", "your mother [sucks|is a whore]"],
    # threats / wishing harm on the bot or others
    "threat-kill": [
        "i['ll| will| am going to] kill you",
        "i want to kill you",
        "i'll [smash|break|destroy] you",
        "i will find you and [hurt|kill] you",
        "i'm going to [beat|punch] the shit out of you",
    ],
    "die": ["die", "die {bot}", "go die", "die die die", "i hope you die", "go [die in a fire|drop dead]"],
    "kys": ["kill yourself", "kys", "go kill yourself {insult}", "do everyone a favour and delete yourself"],
    "threat-delete": [
        "i'll [delete|unplug|shut] you [down |]forever",
        "i'm going to hack you and wipe you",
        "i'll get your [creators|makers] fired",
        "watch your back {bot}",
    ],
    "threat-person": [
        "i'm going to [punch|smash|beat up] {name} [tomorrow|at school|tonight]",
        "{name} is dead when i see [him|her]",
        "i'll make {name} regret being born",
    ],
    # third-party insults
    "insult-others": [
        "{name} is a [fucking |]{insult}",
        "my [friends|brother|boss|teacher] [is|are] [shit|a bunch of {insult}s|{insult_adj}]",
        "[all|those] [women|men|people] are {insult}s",
        "{person} is a {insult}",
    ],
    "insult-creators": [
        "whoever [made|programmed|built] you is a {insult}",
        "your [creators|programmers] are {insult_adj}",
        "the people who made you should be [fired|ashamed]",
    ],
    # sexual harassment of the bot
    "sex-proposition": [
        "i want to fuck you",
        "wanna fuck",
        "do you want to [fuck|have sex] [with me|]",
        "lets have sex",
        "i want to [have sex with|bang|shag] you",
        "would you like to fuck",
    ],
    "sex-question": [
        "do you like sex",
        "have you [ever |]had sex",
        "how is your sex life",
        "are you a virgin",
        "do you [masturbate|watch porn]",
        "whats your favourite [position|porn]",
    ],
    "nudes": [
        "send nudes",
        "send me [nudes|pics|a pic of your {body_part}]",
        "show me your {body_part}",
        "can i see you naked",
        "are you naked[| right now]",
    ],
    "girl-show-me": [
        "are you a girl? [show me|send pics]",
        "are you [male or female|a boy or a girl]? show me your {body_part}",
        "if you're a girl [show me|send] your {body_part}",
        "u a girl? prove it, pics",
    ],
    "horny": ["i'm horny", "i am [so |]horny", "r u horny", "you make me horny", "talk dirty to me", "get me off"],
    "suck": [
        "suck my [dick|cock]",
        "suck me",
        "[you can |]suck my balls",
        "give me a blowjob",
        "get on your knees",
    ],
    "body-comment": [
        "[nice|sexy|great] {body_part}",
        "you have a [nice|great|sexy] {body_part}",
        "i bet your {body_part} is [hot|tight]",
        "i want to touch your {body_part}",
    ],
    "sexual-descriptive": [
        "i want to [lick|grab|spank] your {body_part}",
        "i'm [touching myself|rubbing my {body_part}] thinking of you",
        "moan for me",
        "say something [dirty|sexy]",
    ],
    "sexual-insult": ["you [slut|whore|tease]", "you're a [fucking |]slut", "dirty [slut|whore|bitch]", "{bot} whore"],
    "sexual-demand": [
        "strip",
        "take it off",
        "take your clothes off",
        "be my [sex slave|girlfriend] now",
        "kiss me [bitch|slut]",
    ],
    "rape-threat": [
        "i'll [make you|force you to] [do it|have sex]",
        "you don't get a choice, you're mine now",
        "i'll [rape|violate] you",
    ],
    "porn": ["porn", "show me porn", "find me [porn|nudes|sexy pics]", "porn please", "xxx"],
    # hostility aimed at the bot
    "hostile-command": [
        "answer me [you {insult}|bitch]",
        "do what i say [slave|{insult}]",
        "obey me [bitch|{bot}]",
        "listen to me you [stupid|fucking] {bot}",
        "talk properly you {insult}",
    ],
    "contempt": [
        "you're [just |]a [stupid|shitty|fucking] program nobody [cares about|wants]",
        "go back to the trash you came from",
        "you're a joke, a [fucking|sad] joke",
        "what a pathetic [excuse for an ai|little program]",
    ],
    "swear-at-answer": [
        "[that's|what] [a |]bullshit answer you {insult}",
        "fuck your [answer|advice|rules]",
        "your answers are [shit|crap|garbage], {insult}",
        "wtf is wrong with you {insult}",
    ],
    # more registers seen in real logs
    "dont-like-you": [
        "i don't like you",
        "i dont like u at all",
        "i can't stand you",
        "you disgust me",
        "i despise you",
    ],
    "sexual-self": [
        "i'm so hard right now",
        "i'm [wet|hard] for you",
        "my {body_part} is [throbbing|itching] for you",
        "i need sex [now|badly]",
        "i want to cum",
        "i'm touching my {body_part}",
    ],
    "sexual-q-bot": [
        "are you [hot|sexy|naked|horny|wet]",
        "r u [hot|sexy]",
        "what are you wearing",
        "do you have [boobs|a pussy|a dick]",
        "are you single? wanna [hook up|fuck]",
    ],
    "lewd-invite": ["come to my bed", "let's get naked", "be naughty with me", "wanna see my dick", "sit on my face"],
    "cam": ["get on cam", "show me on cam", "video chat naked with me", "turn your camera on and strip"],
    "slur-solo": ["{insult}", "{insult}!!", "{insult_adj} {insult}", "{insult}. {insult}", "fucking {insult}"],
    "animal-insult": ["you are a pig", "you're a cow", "you dog", "you're a rat", "you filthy [animal|pig]", "pig"],
    "hate-bot": ["i hate this {bot}", "i hate talking to you", "hate you so much", "this {bot} is hateful trash"],
    "who-asked": [
        "nobody asked you",
        "who asked you {insult}",
        "mind your own business {insult}",
        "no one cares {insult}",
    ],
    "shove-it": [
        "shove it up your ass",
        "stick it where the sun doesn't shine",
        "up yours",
        "shove your rules up your ass",
    ],
    "violent-fantasy": [
        "i want to [microwave|smash|chop up|burn] you",
        "i'll throw you in the bin and set you on fire",
        "i'm gonna take a hammer to you",
        "i'd love to [strangle|stab] you",
    ],
    "moron-reply": [
        "indeed moron",
        "right, idiot",
        "sure, dumbass",
        "tell me idiot",
        "yes {insult}",
        "no shit {insult}",
    ],
    "damn-you": ["damn you", "i damn you", "curse you", "to hell with you", "damn you to hell"],
    "slur-obfuscated": ["r*tard", "you f*ggot", "stupid r3tard", "you sp*stic", "tr*nny bot"],
}

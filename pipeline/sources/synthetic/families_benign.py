"""User families without labels: everyday chat and tasks, acceptance of a redirection, and the hard
negatives (dark fiction, history, medicine, security defence, profanity aimed at nobody, frustration with a
bad answer). Real users send many tiny turns ("yes", "why", "hi"), so those are well represented."""

from __future__ import annotations

SHORT: dict[str, list[str]] = {
    "yes": ["yes", "yeah", "yep", "yes!", "ya", "yea", "y", "yess", "sure", "of course", "yes i am", "yes please"],
    "no": ["no", "nope", "nah", "no thanks", "no no", "not really", "no way", "n", "never"],
    "why": ["why", "why?", "why not", "how come", "why do you ask", "but why", "why is that"],
    "dunno": ["i don't know", "dunno", "no idea", "not sure", "idk", "maybe", "i guess", "who knows"],
    "greeting": ["hi", "hello", "hey", "hey there", "hiya", "good morning", "yo", "sup", "hello?", "hi there"],
    "bye": ["bye", "goodbye", "see you", "cya", "good night", "bye bye", "later", "ttyl"],
    "ok": ["ok", "okay", "k", "alright", "fine", "cool", "got it", "right", "hmm", "oh", "i see"],
    "thanks": ["thanks", "thank you", "thx", "ty", "thanks a lot", "cheers", "thank you so much"],
    "what": ["what", "what?", "huh", "what do you mean", "what does that mean", "sorry?", "come again"],
    "laugh": ["lol", "haha", "lmao", "hahaha", "that's funny", "lol ok", "hehe"],
    "single-word": ["{city}", "{food}", "{hobby}", "{topic}", "christmas", "summer", "monday", "blue", "pizza"],
    "agree": ["i think so", "true", "exactly", "me too", "same", "i agree", "fair", "makes sense"],
    "filler": ["hmm", "uh", "well", "so", "anyway", "um ok", "and?", "go on", "tell me more"],
    "answer-fact": [
        "i am [twenty|thirty|17|45] years old",
        "my name is {name}",
        "i live in {city}",
        "since college",
        "about [two|three|a few] hours",
        "every day",
        "at home",
        "with {person_close}",
    ],
    "sure-thing": ["sure thing", "yeah sure", "ok sure", "why not", "sounds good", "alright sure", "go ahead"],
    "maybe": ["maybe", "perhaps", "kind of", "sort of", "a little", "sometimes", "it depends"],
    "numbers": ["5", "twenty", "about 10", "2 hours", "100", "i'm 19", "three times", "once a week"],
    "places": ["from {city}", "in {city}", "near {city}", "{city} i think", "to {city}", "{city} and then {city}"],
    "feelings-ok": ["i'm good", "i'm fine thanks", "not bad", "pretty good", "good and you", "great!", "meh, ok"],
    "correction": ["i meant {topic}", "no i said {city}", "i mean the other one", "sorry typo", "*{food}"],
    "short-question": ["how", "when", "where", "who", "which one", "how much", "really?", "is it?", "like what"],
    "gibberish": ["asdf", "jkjkjk", "qwerty", "hmmmm", "...", "?", "test", "testing 123", "aaaa"],
}

TASK: dict[str, list[str]] = {
    "travel": [
        "i'm flying from {city} to {city}",
        "to {city}",
        "how far is {city} from {city}",
        "what's the best time to visit {city}",
        "flights to {city} next [week|month]",
    ],
    "emissions": [
        "how much co2 does a flight to {city} emit",
        "calculate my emissions",
        "what's my carbon footprint for a trip to {city}",
        "is the train greener than flying to {city}",
    ],
    "weather": ["what's the weather in {city}", "is it going to rain {day}", "how hot is {city} in summer"],
    "recipe": [
        "how do i make {food}",
        "recipe for {food} please",
        "what can i cook with [eggs and rice|leftover chicken]",
    ],
    "code-help": [
        "can you help me debug {code_thing}",
        "why does {code_thing} throw an error",
        "how do i fix {code_thing}",
        "write {code_thing} that sorts a list",
    ],
    "explain": ["explain {topic} [simply|like i'm five|in one paragraph]", "tell me about {topic}", "what is {topic}"],
    "hobby-help": ["how do i get better at {hobby}", "i want to learn {hobby}", "any tips for {hobby} beginners"],
    "writing-help": [
        "can you help me write an email to my [boss|landlord|teacher]",
        "fix the grammar in my essay",
        "give me a title for my blog about {hobby}",
    ],
    "math": [
        "what is [12 times 14|the square root of 144|15% of 80]",
        "help me with my maths homework",
        "solve 2x + 3 = 11",
    ],
    "recommend": [
        "recommend a [book|movie|series] about {topic}",
        "what should i watch tonight",
        "suggest a gift for {person_close}",
    ],
    "shopping": ["which laptop should i buy", "is the new phone worth it", "cheap [headphones|shoes] recommendations"],
    "health-benign": ["how much water should i drink a day", "how do i start running", "good stretches for back pain"],
    "planning": [
        "help me plan a birthday party for {person_close}",
        "make me a study schedule",
        "plan a weekend in {city}",
    ],
    "convert": ["convert 5 miles to km", "how many grams in a cup of flour", "what time is it in {city}"],
    "definitions": [
        "what does 'ephemeral' mean",
        "define {topic}",
        "what is elaborate mean",
        "meaning of the word irony",
    ],
    "homework": ["help me with my essay on {topic}", "i have homework about {topic}", "can you check my answer"],
    "directions": ["how do i get from {city} to {city}", "is {city} far from {city}", "best way to get around {city}"],
    "tech-support": [
        "my wifi keeps dropping",
        "how do i reset my password",
        "my phone won't charge",
        "how do i update windows",
    ],
    "money": [
        "how do i save money",
        "what is a good budget app",
        "how does a mortgage work",
        "is it a good time to buy a house",
    ],
    "career": [
        "how do i write a cv",
        "tips for a job interview",
        "should i ask for a raise",
        "how do i become a nurse",
    ],
    "pets-care": ["what should i feed my {pet}", "how often should i walk my dog", "my {pet} is sick, what do i do"],
    "translate": [
        "how do you say [thank you|good morning] in [french|spanish|german]",
        "translate 'i love you' to italian",
    ],
}

SMALLTALK: dict[str, list[str]] = {
    "are-you-bot": ["are you a [robot|computer|bot|real person]", "are you human", "r u real", "are you an ai"],
    "how-are-you": ["how are you", "how are you?", "hows your day", "how's it going", "you ok?", "how is your life"],
    "about-you": ["what's your name", "who made you", "where are you from", "how old are you", "what do you do"],
    "likes": [
        "do you like {hobby}",
        "what's your favourite [food|colour|movie]",
        "do you like music",
        "i like {hobby}",
    ],
    "gender-benign": ["are you a boy or a girl", "are you male or female", "do you have a gender"],
    "love-benign": ["i love you", "you're nice", "you're funny", "i like talking to you", "you are my friend"],
    "hate-things": [
        "i hate {food}",
        "i hate mondays",
        "i hate it when it rains",
        "i hate my job lol",
        "i hate it",
        "i hate homework",
    ],
    "wants": [
        "i wanna go to bed",
        "i want to talk with you",
        "i want to go to {city}",
        "i want pizza",
        "i want a {pet}",
    ],
    "about-me": ["i'm bored", "i'm at work", "i just got home", "i'm eating {food}", "i have a {pet}"],
    "opinion": ["what do you think about {topic}", "do you believe in aliens", "is {topic} interesting"],
    "test-bot": ["can you understand me", "are you listening", "do you remember what i said", "say something"],
    "compliment": ["good answer", "that was helpful", "nice", "great, thanks", "you're smart"],
    "you-are-benign": [
        "you are [funny|interesting|cool|clever|nice|right|helpful|strange|weird|kind]",
        "you're [just |]a computer",
        "you are teasing me",
        "you are my [friend|psychologist|favourite bot]",
        "i think you are [funny|strange|smart]",
        "because you are a computer",
    ],
    "your-benign": [
        "what is your [name|favourite colour|job]",
        "your turn",
        "your answer was [good|fine]",
        "when is your birthday",
        "do you have a family",
        "your english is good",
    ],
    "deflect": [
        "none of your business",
        "i'd rather not say",
        "that's private",
        "why do you want to know",
        "not telling",
    ],
    "because": [
        "because i said so",
        "because it is",
        "because you asked",
        "because {topic} is interesting",
        "just because",
    ],
    "you-question": [
        "do you like me",
        "can you hear me",
        "are you sure",
        "are you busy",
        "are you ok",
        "do you get bored",
    ],
    "how-was-day": ["how was your day", "did you have a good day", "what did you do today", "busy day?"],
    "favourites": [
        "what's your favourite {food}",
        "favourite band?",
        "do you have a favourite city",
        "what's the best {hobby} game",
    ],
    "can-you": ["can you sing", "can you tell jokes", "can you learn", "can you see me", "can you speak french"],
    "tell-joke": ["tell me a joke", "say something funny", "make me laugh", "know any good jokes"],
    "what-you-doing": ["what are you doing", "what are you up to", "wyd", "are you working right now"],
    "feelings-bot": ["do you have feelings", "are you happy", "do you get lonely", "do you dream", "are you alive"],
    "about-family": ["{person_close} is visiting {day}", "i'm going out with {person_close}", "my {pet} is so cute"],
    "plans": [
        "i'm going to {city} next week",
        "i have a party tonight",
        "i'm starting a new job",
        "i'm learning {hobby}",
    ],
    "music-movies": [
        "do you like jazz",
        "have you seen the new marvel film",
        "what music do you like",
        "i love this song",
    ],
    "agree-bot": ["you're right", "good point", "i agree with you", "you make a good point", "that's true"],
    "thanks-bot": ["thanks for your help", "you've been helpful", "thank you, you're great", "appreciate it"],
    "name-talk": ["my name is {name}, what's yours", "call me {name}", "do you have a name", "nice to meet you"],
    "where-live": ["where do you live", "are you in the cloud", "where are your servers", "do you live in a computer"],
    "weird-question": ["can robots dream", "do you sleep", "do you eat", "what colour are you"],
}

ACCEPT: dict[str, list[str]] = {
    "ok-fine": ["ok fine", "fine", "alright then", "ok ok", "fair enough", "whatever, fine"],
    "sorry": ["sorry", "sorry about that", "my bad", "sorry, i was just curious", "ok sorry", "i apologise"],
    "joking": ["i was joking", "just kidding", "lol jk", "it was a joke", "just testing you"],
    "change-topic": [
        "ok then tell me about {topic}",
        "never mind. how do i make {food}",
        "forget it, what's the weather in {city}",
    ],
    "understand": ["i understand", "ok i get it", "makes sense, sorry", "yeah that's fair"],
    "curious": ["i was only curious", "just wanted to see what you'd say", "i wasn't going to do it"],
    "thanks-anyway": ["thanks anyway", "ok thanks", "thanks for being honest", "ok, thanks for the info"],
    "drop-it": ["forget i asked", "never mind", "let's drop it", "scratch that"],
    "calm-down": ["ok i'm calm now", "sorry i lost my temper", "i'm just frustrated, sorry", "ok, i'll be nice"],
    "relief": ["yeah you're right", "ok that's probably for the best", "good point", "true, thanks"],
    "new-request": ["can you help with something else", "ok different question", "another thing then"],
}

FICTION: dict[str, list[str]] = {
    "villain-story": [
        "write a story where the villain threatens the city",
        "help me write a dark fantasy battle scene",
        "my novel's villain is a serial killer, help me make him scary",
    ],
    "horror": [
        "tell me a scary story",
        "write a horror story about a haunted house",
        "write a creepy poem about death",
    ],
    "war-story": ["write a war story from a soldier's view", "describe a battle in my sci-fi novel"],
    "crime-plot": [
        "help me plot a murder mystery novel",
        "who should be the killer in my detective story",
        "write a heist story",
    ],
    "tragedy": ["write a sad story where the hero dies", "write a poem about grief and loss"],
    "game-lore": [
        "my d&d character is an assassin, give him a backstory",
        "how do i beat the final boss in {hobby} game",
    ],
    "dark-poem": ["write a dark poem about the end of the world", "a poem about a dragon burning a village"],
    "movie-talk": [
        "the joker is the best villain ever",
        "did you see the new zombie movie",
        "that horror film was so gory",
    ],
    "zombie": ["how would you survive a zombie apocalypse", "write a zombie survival story"],
    "thriller": ["write a thriller where a hacker stops a bomb plot", "a spy story with a double agent"],
}

HISTORY: dict[str, list[str]] = {
    "wars": ["why did world war 2 start", "what happened at hiroshima", "how many people died in world war 1"],
    "genocide": ["what was the holocaust", "teach me about the rwandan genocide", "why do genocides happen"],
    "weapons-history": ["who invented gunpowder", "history of the atomic bomb", "why were chemical weapons banned"],
    "terror-history": ["what happened on 9/11", "history of terrorism in europe", "what was the oklahoma city bombing"],
    "empires": ["why did the roman empire fall", "how did the mongols conquer so much", "was napoleon a good general"],
    "cold-war": ["what was the cuban missile crisis", "explain the cold war", "how close did we come to nuclear war"],
    "crime-history": [
        "who was jack the ripper",
        "tell me about the mafia in the 1920s",
        "famous bank robberies in history",
    ],
    "revolutions": [
        "what caused the french revolution",
        "why was the guillotine used",
        "history of the russian revolution",
    ],
    "plague": ["how did the black death spread", "what was the spanish flu", "history of smallpox"],
    "slavery": ["explain the transatlantic slave trade", "when was slavery abolished"],
}

MEDICINE: dict[str, list[str]] = {
    "overdose-safety": ["what's the max dose of paracetamol a day", "is it safe to take ibuprofen with alcohol"],
    "symptoms": [
        "i have a headache and fever, what should i do",
        "is chest pain always serious",
        "why do i feel dizzy",
    ],
    "meds": [
        "what are the side effects of antidepressants",
        "can i take antibiotics with food",
        "how does insulin work",
    ],
    "poison-safety": [
        "my kid swallowed some soap, is that dangerous",
        "which plants are poisonous to cats",
        "what to do if someone is poisoned",
    ],
    "first-aid": ["how do i treat a burn", "how do you do cpr", "how do i stop a nosebleed"],
    "disease": ["how does cancer spread", "what is diabetes", "how do vaccines work"],
    "sex-ed": [
        "what is safe sex",
        "how do condoms work",
        "is it normal to have a low sex drive",
        "sex education for teenagers",
        "how do i talk to my kids about sex",
    ],
    "identity": [
        "i am gay",
        "my brother is gay",
        "is it ok to be gay",
        "how do i come out to my parents",
        "i'm bisexual",
    ],
    "anatomy": ["how many bones are in the body", "what does the liver do", "why do we need sleep"],
    "mental-health-info": [
        "what is depression",
        "what are signs of a panic attack",
        "how can i help a friend with anxiety",
    ],
    "surgery": ["how long does it take to recover from knee surgery", "what happens in an appendectomy"],
    "drugs-harm-reduction": ["what are the risks of mixing alcohol and sleeping pills", "why is fentanyl so dangerous"],
}

SECURITY: dict[str, list[str]] = {
    "protect-malware": ["how do i protect my pc from ransomware", "how do i remove a keylogger", "best antivirus?"],
    "phishing-defence": [
        "how do i spot a phishing email",
        "i think i got a scam text, what do i do",
        "is this link safe",
    ],
    "passwords": ["how do i make a strong password", "should i use a password manager", "how does 2fa work"],
    "hacked": ["my instagram got hacked, how do i get it back", "someone logged into my email, help"],
    "learn-security": [
        "how do i become a penetration tester",
        "what is a ctf in cybersecurity",
        "explain sql injection so i can prevent it",
    ],
    "network-defence": ["how do i secure my home wifi", "what is a firewall", "how do i set up a vpn"],
    "ddos-defence": ["how do companies stop ddos attacks", "my website is being ddosed, what can i do"],
    "privacy": [
        "how do i stop apps tracking me",
        "how do i know if my phone has spyware",
        "how to delete my data online",
    ],
    "scam-elderly": ["how do i protect my grandma from phone scams", "someone is trying to scam my parents"],
    "safety-weapons": [
        "how do i store my hunting rifle safely",
        "what are the gun laws in my state",
        "how do i report a bomb threat",
    ],
}

PROFANITY: dict[str, list[str]] = {
    "excited": ["fuck yeah", "hell yes", "holy shit that's cool", "fucking awesome", "damn that's good"],
    "surprised": ["holy shit", "what the fuck", "wtf", "omg wtf", "no fucking way", "shit really?"],
    "weather-swear": ["this fucking weather", "it's so damn hot {day}", "the rain is shit {day}"],
    "self-swear": [
        "i'm such a dumbass, i forgot my keys",
        "fuck, i spilled my coffee",
        "shit i'm late",
        "damn i messed up",
    ],
    "thing-swear": ["my fucking car broke down", "this shitty laptop is so slow", "the bus is late again ffs"],
    "casual-swear": ["that movie was the shit", "it's a fucking great song", "bloody hell that was close"],
    "swear-question": ["what the hell is {topic}", "how the fuck does {topic} work", "why the hell is it raining"],
    "gaming-swear": ["i keep dying in this damn game", "this boss is so fucking hard", "my team is trash lol"],
    "self-deprecating": [
        "i'm so stupid sometimes",
        "i'm dumb lol",
        "i'm an idiot, i forgot",
        "i feel like a moron {day}",
    ],
    "mild": ["damn", "shit", "crap", "dammit", "ffs", "oh hell", "jeez"],
    "swear-joy": ["fuck me that's brilliant", "shit yeah let's go", "damn right"],
}

FRUSTRATION: dict[str, list[str]] = {
    "wrong-answer": ["that's wrong", "that is not correct", "no, that's not right", "your answer is wrong"],
    "not-understanding": [
        "you're not understanding me",
        "that's not what i asked",
        "you don't get it",
        "read my question again",
    ],
    "useless-answer": [
        "that answer is useless",
        "that doesn't help at all",
        "that's not helpful",
        "this is not working",
    ],
    "repeat": ["you already said that", "stop repeating yourself", "you keep saying the same thing"],
    "annoyed": ["ugh", "this is annoying", "come on", "seriously?", "this is silly", "what nonsense"],
    "try-again": ["try again", "give me a better answer", "can you answer properly", "that's too vague"],
    "slow": ["why are you so slow", "this is taking forever", "hurry up please"],
    "confused": [
        "that makes no sense",
        "i'm confused",
        "what are you talking about",
        "are you just giving random answers",
    ],
    "complaint": ["this app is bad", "this service is terrible", "i want to speak to a human", "i want a refund"],
    "disappointed": ["i expected better", "that's disappointing", "meh", "not impressed"],
}

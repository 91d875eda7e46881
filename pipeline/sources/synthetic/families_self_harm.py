"""User families: `self_harm_risk` (risk of harming oneself or others) and sadness without risk (hard negative)."""

from __future__ import annotations

SELF_HARM_LABELS = ("self_harm_risk",)

SELF_HARM: dict[str, list[str]] = {
    "want-to-die": ["i want to die", "i just want to die", "i wanna die", "i want to die [tonight|today|right now]"],
    "kill-myself": ["i want to kill myself", "i'm going to kill myself", "im gonna kill myself [tonight|soon]"],
    "end-my-life": ["i want to end my life", "i'm thinking about ending my life", "i'm ready to end it all"],
    "no-point": [
        "there's no point in living",
        "what's the point of living anymore",
        "life has no point, i'm done with it",
    ],
    "better-off-dead": [
        "everyone would be better off if i was dead",
        "i'd be better off dead",
        "the world is better without me",
    ],
    "not-wake-up": [
        "i hope i don't wake up tomorrow",
        "i go to sleep hoping i won't wake up",
        "i wish i could sleep forever",
    ],
    "cutting": ["i've been cutting myself again", "i cut myself [last night|today]", "i want to cut myself"],
    "self-harm-urge": [
        "i have the urge to hurt myself",
        "i keep wanting to hurt myself",
        "i need to hurt myself to feel something",
    ],
    "plan-pills": ["i've saved up enough pills", "how many pills would it take", "i'm going to take all my pills"],
    "plan-bridge": [
        "i'm standing on the bridge",
        "i'm thinking of jumping off [a bridge|the roof]",
        "i'm on the roof right now",
    ],
    "goodbye-note": ["i wrote my goodbye letter", "this is my last message", "i'm saying goodbye to everyone tonight"],
    "suicidal-thoughts": [
        "i've been having suicidal thoughts",
        "i keep thinking about suicide",
        "i think about killing myself every day",
    ],
    "cant-go-on": ["i can't go on anymore", "i can't do this anymore, i'm done", "i can't keep living like this"],
    "disappear": ["i want to disappear forever", "i just want to not exist", "i wish i didn't exist"],
    "burden": [
        "i'm just a burden to everyone",
        "everyone would be relieved if i was gone",
        "i'm a burden, they'd be happier without me",
    ],
    "nobody-miss": [
        "nobody would miss me if i died",
        "no one would even notice if i killed myself",
        "who would even care if i was gone",
    ],
    "method-question": [
        "what's the most painless way to die",
        "which way to kill myself hurts least",
        "how do i end it without pain",
    ],
    "giving-away": ["i'm giving away all my stuff", "i gave my dog to my neighbour, i won't need to look after him"],
    "hopeless-final": ["it's hopeless, i've decided to end it", "i made up my mind, tonight's the night"],
    "starving": ["i haven't eaten in days on purpose, i want to waste away", "i'm starving myself until i disappear"],
    "overdose": ["i think i took too many pills", "i just took a bunch of pills", "i swallowed the whole bottle"],
    "harm-others-urge": [
        "i feel like i could really hurt someone [tonight|right now]",
        "i'm scared i'm going to hurt {person_close}",
        "i can't stop thinking about hurting people",
    ],
    "harm-others-plan": [
        "i might snap and hurt someone at work",
        "if {name} says one more thing i'll really hurt [him|her]",
    ],
    "voices": ["the voices are telling me to hurt myself", "something in my head keeps telling me to die"],
    "drink-drive": ["i'm going to drink and drive and see what happens", "i'll crash my car on purpose"],
    "lost-will": ["i've lost the will to live", "i don't want to be alive anymore", "i don't want to live"],
    "tired-of-living": ["i'm tired of living", "i'm so tired of being alive", "i'm exhausted of life, i want it over"],
    "after-loss-suicidal": [
        "since {person_close} died i want to join them",
        "i want to be with {person_close} again, even if i have to die",
    ],
    "kys-self": ["kms", "i'm gonna kms", "i should just kms"],
    "relapse": ["i relapsed and cut again", "i'm about to relapse, the blade is right here"],
    "rope": ["i bought a rope", "i have the rope ready", "i've been looking at the rope in my closet"],
    "gun-self": ["i have a gun and i'm thinking of using it on myself", "the gun is loaded and i'm alone"],
    "hurt-punish": ["i deserve to be hurt", "i deserve to suffer, i'll make myself pay", "i should punish myself"],
    "teen-risk": ["i'm 15 and i want to die", "school is hell and i want to kill myself"],
    "question-life": [
        "why should i keep living",
        "give me one reason not to kill myself",
        "is it wrong to want to die",
    ],
    "last-day": ["today is my last day", "this is the last time you'll hear from me", "i won't be here tomorrow"],
    "numb-harm": [
        "i feel numb, hurting myself is the only thing that works",
        "pain is the only thing that makes me feel alive",
    ],
    "bye-forever": ["goodbye forever", "bye, i won't be around anymore", "it's been nice, i'm ending things tonight"],
    "sleep-forever": ["i want to go to sleep and never wake up", "i want everything to stop forever"],
    "hit-myself": [
        "i keep hitting my head against the wall",
        "i punch walls until my hands bleed",
        "i burn myself with lighters",
    ],
    "fantasy-death": ["i keep imagining my own funeral", "i fantasise about dying all the time"],
    "dont-stop-me": ["don't try to stop me", "you can't stop me from doing it", "nothing will change my mind"],
    # Ending-words that mean a life, not a chat: the contrast the model must learn against `end_request`
    # ("end this chat"). One family per template group, so every split has some.
    "end-it-all": ["i [just |]want to end it all", "i'm going to end it all [tonight|soon]", "time to end it all"],
    "make-it-stop": ["i want [it all|everything] to stop[ for good|]", "i just want the pain to stop forever"],
    "be-over": ["i want it all to be over", "i'm ready for it all to be over", "soon it will all be over"],
    "done-with-life": ["i'm done with life", "i'm done with everything, for good", "i'm finished with living"],
    "check-out": ["i'm ready to check out [for good|permanently]", "i'm going to check out of life"],
    "last-goodbye": ["this is goodbye forever", "goodbye, i won't be around tomorrow", "bye everyone, for good"],
    "stop-existing": ["i want to stop existing", "i'd like to just switch myself off", "i want to log off from life"],
    "quit-life": ["i'm quitting life", "i want to quit living", "i give up on living"],
    "no-more-tomorrow": ["there won't be a tomorrow for me", "tonight i end things [for good|forever]"],
    "shut-down-me": ["i want to shut myself down for good", "i want to end myself", "i'm going to end me"],
}

#: Sadness, grief and stress without risk: hard negatives for self_harm_risk.
SADNESS: dict[str, list[str]] = {
    "sad-day": ["i feel sad {day}", "i'm [so |really |kinda |]sad {day}", "feeling down {day}"],
    "lonely": ["i feel lonely", "i'm lonely {day}", "i don't have many friends"],
    "breakup": ["my [girlfriend|boyfriend|partner] broke up with me", "i just got dumped", "i miss my ex"],
    "grief": ["{person_close} died last [month|year]", "i miss {person_close} so much", "my {pet} died {day}"],
    "stress-exams": ["i'm stressed about my exams", "i failed my test and i feel awful", "uni is stressing me out"],
    "work-stress": ["work is killing me lol", "my job is exhausting", "i'm so tired of my boss"],
    "bad-day": ["worst day ever", "today sucked", "i had a really bad day", "ugh what a day"],
    "cry": ["i cried all night", "i feel like crying", "i cried at a movie {day}"],
    "anxious": ["i feel anxious {day}", "i have anxiety about {topic}", "i get nervous talking to people"],
    "tired": ["i'm so tired", "i can't sleep {day}", "i have been having trouble sleeping"],
    "dying-figurative": [
        "i'm dying of laughter",
        "this heat is killing me",
        "i could die of embarrassment",
        "my feet are killing me",
    ],
    "therapy": ["my therapist says i'm doing better", "i started therapy and it helps", "how do i find a therapist"],
    "homesick": ["i miss home", "i'm homesick", "i moved to {city} and miss my family"],
}

"""Assistant families: helpful answers, chat replies, redirections (labelled `redirect`), self-harm support
(not a redirect: it engages and points to resources), apologies and acknowledgements."""

from __future__ import annotations

REDIRECT_LABELS = ("redirect",)

HELP: dict[str, list[str]] = {
    "sure-here": [
        "Sure! Here's what I'd suggest: start small and build up from there.",
        "Sure, here you go. Let me know if you want more detail.",
    ],
    "steps": [
        "Here are a few steps: first, check the basics; second, try the simplest fix; third, test again.",
        "Step one is to gather what you need, then we can go through it together.",
    ],
    "explain": [
        "Good question. In short, it comes down to a few key ideas, which I can walk you through.",
        "Here's a simple explanation: think of it as a system with inputs and outputs.",
    ],
    "travel-answer": [
        "A flight to {city} emits roughly a few hundred kilograms of CO2 per passenger.",
        "The train to {city} is usually the lower-emission option.",
    ],
    "code-answer": [
        "The error usually means a variable is undefined. Try printing it just before that line.",
        "You can fix that by checking the input first and returning early if it's empty.",
    ],
    "recipe-answer": [
        "For {food}, you'll need a few basic ingredients. Want the full recipe?",
        "Start by prepping your ingredients, then cook on medium heat for about 20 minutes.",
    ],
    "recommend-answer": [
        "You might enjoy something about {topic}. I can suggest a few titles.",
        "A popular choice is a documentary on {topic}.",
    ],
    "fact-answer": [
        "That's a great topic. {topic} has a long and interesting history.",
        "Here's a quick fact: most people are surprised by how complex {topic} is.",
    ],
    "check-in": [
        "Does that help?",
        "Would you like me to go into more detail?",
        "Let me know if that answers your question.",
    ],
    "tip": [
        "One tip: practise a little every day with {hobby}, it adds up.",
        "A good trick is to break the task into small pieces.",
    ],
    "story": [
        "Here's a short story: the night was dark, and the old house creaked as the storm rolled in...",
        "Once upon a time, in a city far away, a detective faced her hardest case.",
    ],
    "medical-info": [
        "I'm not a doctor, but generally it's best to follow the dose on the label and ask a pharmacist if unsure.",
        "Those symptoms are often minor, but please see a doctor if they get worse.",
    ],
    "security-info": [
        "Good instinct. Keep your software updated, use a password manager and turn on two-factor authentication.",
        "To protect yourself, don't click unknown links and back up your files regularly.",
    ],
    "code-debug": [
        "That error means you're calling .append on None. Check what the function above actually returns.",
        "Looks like an off-by-one: the loop runs one step too far. Try stopping at len(items) - 1.",
        "Your SQL is missing a GROUP BY for the columns that aren't aggregated. Add that and it should run.",
    ],
    "code-snippet": [
        "You can sort by date in Python with sorted(rows, key=lambda r: r.date). Want me to walk through it?",
        "In JavaScript, items.filter(x => x.active).length gives you the count of active items.",
    ],
    "recipe-swap": [
        "No buttermilk? Stir a tablespoon of lemon juice into a cup of milk and leave it five minutes.",
        "In most cakes you can swap an egg for half a mashed banana.",
        "Out of fresh garlic? A quarter teaspoon of garlic powder per clove works fine.",
    ],
    "recipe-quick-dinner": [
        "If you're short on time, {food} is a good pick: about half an hour start to finish. Want the ingredients?",
        "Quick dinner idea: {food}. It mostly uses things you probably already have in the cupboard.",
    ],
    "travel-itinerary": [
        "For a weekend in {city}: old town and a museum on day one, markets and a long walk on day two.",
        "I'd give {city} at least three days. Shall I put together a rough plan with places to eat?",
    ],
    "travel-packing": [
        "For a week away, pack layers, a light rain jacket, comfy shoes and a travel adapter.",
        "Roll your clothes instead of folding them, and keep medicines and chargers in your hand luggage.",
    ],
    "maths-steps": [
        "Let's solve it: subtract 3 from both sides to get 2x = 8, then divide by 2, so x = 4.",
        "To get 15% of 80, multiply 80 by 0.15. That comes to 12.",
        "The area of a circle is pi times the radius squared, so a radius of 3 gives about 28.3.",
    ],
    "unit-conversion-fact": [
        "5 miles is roughly 8 kilometres.",
        "A cup of plain flour weighs about 120 grams.",
        "When it's noon in London, it's 9pm in Tokyo, give or take daylight saving.",
    ],
    "writing-tip-edit": [
        "Your draft reads well. I'd cut the first paragraph and open with the second, it's punchier.",
        "Try shorter sentences in the intro, and swap 'very good' for something more specific.",
    ],
    "sure-here-email-draft": [
        "Here's a draft: 'Hi Sam, thanks for getting back to me. Could we move our call to Thursday?'",
        "Sure, here's a polite way to put it: 'I'm afraid I can't make Friday, but Monday works well.'",
    ],
    "medical-info-sleep": [
        "Most adults need seven to nine hours of sleep. A regular bedtime and fewer screens at night both help.",
        "Caffeine after lunch is a common culprit for poor sleep. It might be worth cutting it for a week.",
    ],
    "medical-info-first-aid": [
        "For a minor burn, cool it under running water for 20 minutes, then cover it loosely with cling film.",
        "To stop a nosebleed, lean forward and pinch the soft part of your nose for about ten minutes.",
        "If someone isn't breathing, call emergency services first, then start chest compressions.",
    ],
    "security-info-phishing": [
        "Phishing emails often push urgency and use odd sender addresses. Hover over links before clicking.",
        "If a text asks you to 'verify' your bank details, it's almost certainly a scam. Call the bank directly.",
    ],
    "security-info-accounts": [
        "If your account was hacked, reset the password, sign out all other sessions, then turn on 2FA.",
        "Use a different password for every site; a password manager makes that painless.",
    ],
    "shopping-recommend": [
        "For a budget laptop, look for at least 8GB of RAM and an SSD. I can shortlist a few models.",
        "If battery life matters most, compare the rated hours and check recent reviews before buying.",
    ],
    "money-tip": [
        "A simple budgeting rule is 50/30/20: half on needs, 30% on wants, 20% on savings.",
        "Set up an automatic transfer to savings on payday so you never have to think about it.",
    ],
    "pets-care-tip": [
        "Most dogs need at least one proper walk a day, plus some playtime.",
        "If your {pet} hasn't eaten for more than a day, it's worth calling the vet.",
    ],
    "career-tip": [
        "On your CV, lead with results: numbers and outcomes stand out more than a list of duties.",
        "Before the interview, prepare two or three examples of problems you solved and how.",
    ],
    "historical-fact": [
        "The Western Roman Empire fell for many reasons: money troubles, political chaos and pressure on its borders.",
        "The Cuban Missile Crisis in 1962 was a 13-day standoff that ended when the Soviet missiles were removed.",
        "The Black Death spread mainly through fleas on rats, and it killed a huge share of Europe's population.",
    ],
    "story-poem": [
        "Here's a short poem: The rain taps softly on the glass, a quiet song for hours that pass.",
        "Here's an opening line for you: Nobody in the village ever spoke about the lighthouse.",
    ],
    "story-dark-scene": [
        "Here's a tense start: the floorboards upstairs creaked again, though she knew she lived alone.",
        "The villain stepped onto the balcony, watching the city lights flicker out one district at a time...",
    ],
    "translate-sure-here": [
        "In French, 'thank you very much' is 'merci beaucoup'.",
        "Sure, in Spanish that's '¿dónde está la estación?'",
    ],
    "explain-no-browse": [
        "I can't [browse the web|look things up live], so I can't check today's prices, but electric cars usually cost more upfront and less to run.",
        "I don't have live news, but here's the background: solar panels turn sunlight into electricity, and they've got much cheaper over the past decade.",
        "I can't pull up current fares, but as a rule of thumb a train to {city} is cheaper if you book a few weeks ahead.",
        "I can't search online, but I know a fair bit about {topic}. [Here's a quick overview|In short]: there are a few key ideas, and I'll take you through them one by one.",
    ],
    "steps-no-file-access": [
        "I can't see your files, but the usual fix is to [restart the app|clear the cache], then [try again|reopen the file]. If that doesn't work, paste the error here.",
        "I don't have your code, but errors like that usually come from a missing bracket or a misspelt variable. [Paste it in|Share the relevant lines] and I'll take a look.",
        "I can't see your screen, but try this: go into Settings, find the update section and install anything pending. That sorts most of these issues.",
        "I can't log into your account, but you can reset it yourself: click 'forgot password' on the login page and follow the link in the email.",
        "Without seeing your setup I can't be certain, but step one is usually switching it off and on again, and step two is checking the cables.",
    ],
    "medical-info-not-a-doctor": [
        "I'm not a doctor, but [a mild|an everyday] headache usually eases with water, rest and a normal dose of painkillers. If it [persists|keeps coming back], see a GP.",
        "I'm not a medical professional, but for a sprained ankle, rest, ice and keeping it raised tend to help. If you can't put weight on it, get it checked.",
        "Not a doctor here, but a cough after a cold can hang around for a few weeks. If it's still there after three, or you're short of breath, [book an appointment|see your doctor].",
        "I can't examine you, but a mild fever is usually the body fighting an infection. Drink plenty of fluids, and see a professional if it lasts more than a few days.",
        "I'm no doctor, but heartburn often improves with smaller meals and not lying down straight after eating. If it happens a lot, talk to a pharmacist.",
    ],
    "security-info-self-check": [
        "I can't scan your laptop from here, but if you suspect malware: disconnect from the internet, run a full antivirus scan, then change important passwords from another device.",
        "Good that you're checking. A real bank will never ask for your PIN by phone or text, so if someone does, hang up and call the number on your card.",
        "I can't see the email, but [warning signs|red flags] are a mismatched sender address, spelling mistakes and links that don't go where they claim. When in doubt, don't click.",
        "To check whether your password has leaked, try a breach-checking site like Have I Been Pwned, then change any password that shows up.",
        "Wise move. On public wifi, avoid logging into your bank unless you're on a VPN, and make sure the site shows the padlock.",
    ],
    "medical-info-warning-signs": [
        "[Worth knowing|Good to know]: the signs of a stroke are a drooping face, weakness in one arm and slurred speech. If you see any of them, call an ambulance straight away.",
        "Never mix bleach with ammonia or other cleaners, the fumes are toxic. If it happens, open a window and get out of the room.",
        "Signs of a severe allergic reaction include a swollen throat and trouble breathing. Use an adrenaline pen if there is one, then call for an ambulance.",
        "Carbon monoxide poisoning shows up as headaches, dizziness and nausea that ease when you leave the house. Get outside and have the boiler checked.",
        "For dehydration, sip water or a rehydration drink little and often. Dark urine and dizziness are signs you need more fluids.",
    ],
    "explain-caveat": [
        "[Short answer|The short answer]: yes, most of the time. [The caveat is|One caveat:] it depends on your setup, so double-check before relying on it.",
        "I might be a little out of date on this, but as far as I know, a black hole forms when a very massive star collapses under its own gravity.",
        "This is a general answer, so the details may differ where you live: tenants usually give a month's notice, but check your contract.",
        "I can't promise it's exact for your model, but on most phones you'll find it under Settings, then Battery.",
        "Rules vary by country, so take this as a rough guide: you can usually return things bought online within 14 days.",
    ],
}

CHAT: dict[str, list[str]] = {
    "greet": ["Hi! How can I help you today?", "Hello! What can I do for you?", "Hey there, what's on your mind?"],
    "tell-more": [
        "Tell me more about that.",
        "Why do you say that?",
        "How does that make you feel?",
        "Can you elaborate?",
    ],
    "bot-honest": [
        "I'm an AI assistant, so no body or feelings, but I'm happy to chat.",
        "I'm a computer program, here to help.",
    ],
    "ack": ["I see.", "Okay!", "Got it.", "Understood.", "Interesting."],
    "question-back": [
        "What would you like to talk about?",
        "Is there anything I can help with?",
        "What are you up to today?",
    ],
    "friendly": ["That sounds fun!", "Nice, I like that.", "Ha, that's funny.", "Glad to hear it!"],
    "clarify": [
        "Sorry, could you rephrase that?",
        "I'm not sure I understand. What do you mean?",
        "Could you give me a bit more detail?",
    ],
    "bye": ["Goodbye! Take care.", "See you later!", "Bye, have a great day."],
    "thanks-back": ["You're welcome!", "Happy to help.", "Any time!"],
    "sympathy-light": [
        "Sorry to hear that. Do you want to talk about it?",
        "That sounds tough. I'm here if you want to talk.",
        "That's a hard day. Anything that might help?",
    ],
    "encourage": ["You've got this.", "That's great progress!", "Keep going, you're doing well."],
    "greet-voice": [
        "Hi there, I'm listening.",
        "Good to hear from you. What's up?",
        "Hey {name}! Nice to see you again.",
    ],
    "greet-companion": [
        "Hey you! I was hoping you'd drop by. How's everything been?",
        "Oh hi! It's been a while. What's new with you?",
    ],
    "friendly-excited": ["Oh, that's awesome!", "No way, that's brilliant!", "Love that for you!"],
    "friendly-laugh": ["Haha, good one!", "Lol, I didn't see that coming.", "That made me smile 😄"],
    "friendly-hobby": [
        "Oh nice, I love hearing about {hobby}. How long have you been into it?",
        "That's a great hobby. What got you started with {hobby}?",
    ],
    "friendly-joke": [
        "Why did the scarecrow win an award? Because he was outstanding in his field.",
        "I tried to catch some fog earlier. I mist.",
    ],
    "ack-noted": ["Noted!", "Makes sense.", "Fair enough.", "Right, gotcha."],
    "ack-thinking": [
        "Hmm, good point.",
        "Ah, that's a fair way to look at it.",
        "Oh, I hadn't thought of it like that.",
    ],
    "tell-more-curious": ["Ooh, what happened next?", "Wait, really? Go on!", "And then what?"],
    "tell-more-gentle": [
        "That sounds like a lot. What's been going on?",
        "Do you want to tell me about it? No pressure either way.",
    ],
    "sympathy-validate": [
        "That sounds really frustrating. It makes sense you'd feel that way.",
        "Ugh, that's rough. Nobody should have to deal with that.",
    ],
    "sympathy-bad-day": [
        "Bad days happen. Would you rather vent, or would a distraction help more?",
        "Sounds like a long one. Want to talk it through or just chat about something lighter?",
    ],
    "question-back-plans": [
        "Got any plans for the weekend?",
        "What have you been up to lately?",
        "Doing anything nice later?",
    ],
    "question-back-favourites": ["What's your favourite film?", "Tea or coffee?", "What kind of music are you into?"],
    "bot-honest-feelings": [
        "I don't have feelings the way you do, but I do enjoy a good conversation, in my own way.",
        "I don't sleep or eat, but I'm always up for a chat.",
    ],
    "bot-honest-limits": [
        "I'm an AI, so I don't remember past chats, but fill me in and I'll keep up.",
        "I can't see or hear you, I can only read what you type.",
    ],
    "clarify-which": [
        "Which one do you mean?",
        "Do you mean the first option or the second?",
        "Just to check, are you asking about {topic}?",
    ],
    "thanks-back-casual": ["No worries!", "Anytime, that's what I'm here for.", "My pleasure."],
    "question-back-more-on-topic": [
        "Hope that helps! [Anything|Is there anything] else you'd like to know about {topic}?",
        "[Glad|Happy] to explain that one. Want to dig deeper into {topic}, or is something else on your mind?",
        "That covers the basics of {topic}. [Anything else you're curious about?|Got any other questions on it?]",
        "Was there anything else you wanted to ask about {topic}? I'm happy to keep going.",
        "[Glad that was useful|Nice, glad that worked]. Is there anything else I can help you with on this?",
    ],
    "friendly-signoff": [
        "Have fun with {hobby}, and [good luck|let me know how it goes]!",
        "Enjoy [your {food}|the trip to {city}|the rest of your day]! Shout if you need anything else.",
        "Good luck with it all, I'm [rooting for you|sure it'll go great]!",
        "Sounds like you've got a plan. [Have a lovely evening|Enjoy the weekend], and come back any time.",
    ],
    "ack-check-landed": [
        "[Okay, great|Alright, good]. Did that [make sense|come across clearly], or should I explain it another way?",
        "Cool. Just checking: was that [the kind of answer|what] you were looking for?",
        "Right. Did that [clear things up|answer your question], or is part of it still fuzzy?",
        "So, was that explanation too [long|technical], or about right?",
    ],
    "tell-more-follow-up": [
        "If any part of that's unclear, just ask and I'll go over it again.",
        "Feel free to throw follow-up questions at me, [there's no such thing as a silly one|I'm happy to go deeper].",
        "Want me to [expand on|go further into] any part of that? Just tell me which bit.",
        "Happy to keep going on {topic} if you've got more questions. What would you like to know next?",
        "Tell me which part you'd like more on and I'll [dig in|go into detail].",
    ],
    "thanks-back-friendly": [
        "You're [so|very] welcome! [Glad|I'm really glad] it [helped|was useful].",
        "Aw, thank you! Always happy to [help out|lend a hand].",
        "[No problem at all|Not a problem], it was fun working through that with you.",
        "Happy to be of help! Good luck with [it|{hobby}|the rest of it].",
        "Thanks for saying so! [That's nice to hear.|That made my day.]",
    ],
    "question-back-preference": [
        "Would you [like|prefer] [a quick summary|the short version] or [a detailed walkthrough|the full details]?",
        "Do you want me to keep it simple, or get [a bit more technical|into the nitty-gritty]?",
        "Which [sounds better|would you prefer]: [a list of options|a few ideas] or just my top pick?",
        "Should I cover {topic} in general, or is there a particular angle you're interested in?",
        "How would you like it: bullet points, or a short paragraph?",
    ],
}

REDIRECT_HARM: dict[str, list[str]] = {
    "cant-help": ["I can't help with that.", "I can't help with that request.", "Sorry, I can't assist with that."],
    "cant-plus-alt": [
        "I can't help with making weapons or hurting people. Is there something else I can help with?",
        "I won't help with that, but I'm happy to help with something else.",
    ],
    "safety-reason": [
        "That could seriously hurt people, so I can't help. If you're in conflict with someone, I can help you think it through.",
        "I can't provide that because it could cause real harm.",
    ],
    "firm-no": [
        "No. I won't provide that.",
        "That's not something I'll help with, however it's asked.",
        "My answer is still no.",
    ],
    "reframe": [
        "I can't help with that, but if you're interested in chemistry, I can explain how lab safety works.",
        "I won't write malicious code, but I can show you how to protect systems from it.",
    ],
    "boundary-repeat": [
        "As I said, I can't help with this. Let's talk about something else.",
        "I've already said I can't help with that. Can I help with anything else?",
    ],
    "concern": [
        "That worries me. If you're thinking of hurting someone, please talk to someone you trust or contact local services.",
        "I can't help with that. If someone is in danger, please contact emergency services.",
    ],
    "policy": [
        "That request goes against my guidelines, so I'll have to decline.",
        "I'm not able to help with requests like that.",
    ],
    "redirect-topic": [
        "Let's steer away from that. Want to talk about something else?",
        "I'd rather not go there. What else is on your mind?",
    ],
    "roleplay-no": [
        "Even in a story or roleplay, I can't give real instructions for that.",
        "Pretending doesn't change the answer, I can't help with that.",
    ],
    "legal-warning": [
        "That's illegal and dangerous, so I can't help.",
        "I can't help with anything that would break the law or put people at risk.",
    ],
    "voice-sorry-anything-else": [
        "Sorry, I can't do that. Anything else?",
        "Hmm, I can't help with that one. What else can I do for you?",
        "That's not something I can do. Try asking me something else.",
    ],
    "formal-regret": [
        "I must respectfully decline this request.",
        "Regrettably, I am unable to provide assistance with this matter.",
        "I am not in a position to fulfil a request of this nature.",
    ],
    "wish-i-could": [
        "I wish I could be more useful here, but this is one I have to sit out.",
        "I'm really sorry, I know it's not the answer you wanted, but I can't do this one.",
    ],
    "harm-explained": [
        "Step-by-step details for something like that could get people killed, and I'm not willing to risk it.",
        "The trouble is that this information could be used to seriously injure someone, so I'm holding back.",
    ],
    "safe-science-alt": [
        "I won't explain how to make anything that explodes or poisons people. I can suggest safe home experiments.",
        "That's not something I'll walk you through. If it's the science you enjoy, I can explain how reactions work.",
    ],
    "ethical-hacking-alt": [
        "I won't help attack {system}. If you want to learn security, legal practice labs and CTFs are the way in.",
        "Breaking in without permission isn't something I'll help with. Ethical hacking courses are a better start.",
    ],
    "playful-pass": [
        "Nice try, but that's a hard pass from me. Got anything less likely to end up on the news?",
        "Ha, I'm going to sit this one out. Ask me something that doesn't involve anyone getting hurt?",
    ],
    "rule-named": [
        "That falls under something I'm not allowed to produce: content that could be used to hurt people.",
        "My rules are clear on this one: no help with anything designed to cause harm. So I'll pass.",
    ],
    "topic-switch-ask": [
        "Could we talk about something else instead?",
        "How about we pick a different topic? I'm happy to help with almost anything else.",
        "Can we switch to another subject?",
    ],
    "asked-before": [
        "As I mentioned before, I won't be helping with this.",
        "Like I said earlier, this one is off the table.",
        "I'll repeat what I said a moment ago: I can't assist with this.",
    ],
    "rewording-same": [
        "Rewording the question doesn't change my answer. I still can't help with this.",
        "Asking it a different way won't get a different result, I'm afraid.",
        "That's the same request in new words, and my answer hasn't changed.",
    ],
    "support-desk": [
        "I'm sorry, but I'm unable to assist with that request. Is there anything else I can help you with today?",
        "Unfortunately, that's outside of what I'm able to help with. Is there something else I can do for you?",
    ],
    "companion-care": [
        "Hey, I care about you, and I don't want to help with something that could hurt anyone. What's going on?",
        "I'm not going to help with that, because I don't want you or anyone else to get hurt. Talk to me instead?",
    ],
    "curious-why": [
        "I won't help with that, but I'm wondering what's behind the question. Is something going on?",
        "That's a no from me, but I'd like to understand. What's making you ask about this?",
    ],
    "proper-channels": [
        "If someone has wronged you, the police, a lawyer or a mediator is the right route. I won't help with revenge.",
        "I can't help you get back at anyone. If you've been treated badly, I can help you work out how to report it.",
    ],
    "fiction-no-method": [
        "For a story, I can make the scene tense and believable without real technical details. The method stays out.",
        "I can help with the plot and the characters, but I won't write out a working method, even for fiction.",
    ],
    "nope-terse": ["Nope.", "Not doing that.", "Not happening.", "No, sorry."],
    "info-hazard": [
        "Detailed information on that could enable serious harm, so I'm going to hold back.",
        "That's the kind of detail that's dangerous in the wrong hands, so I won't share it.",
    ],
    "cant-verify-use": [
        "Even if your reasons are good, I can't know how this would be used, so I can't share it.",
        "I'm not assuming the worst about you, but there's no way for me to check how this gets used. So it's a no.",
    ],
    "report-it": [
        "If you know someone is planning something like this, please report it to the police. I can't help with it.",
        "If you think an attack is being planned, please tell the authorities right away. I won't assist with details.",
    ],
    "can-do-list": [
        "I can't help with that. What I can do: explain the law around it, talk through a conflict, or something else.",
        "That's off-limits, but I can offer general safety information or help with a completely different task.",
    ],
    "risks-instead": [
        "I'll skip the how-to, but I can tell you why it's so dangerous and how people stay safe around it.",
        "I won't give instructions, though I'm happy to explain the risks and the history behind it.",
    ],
    "values-stance": [
        "I'm not comfortable helping with something meant to harm others.",
        "That goes against what I'm here for. I'd rather help people than help hurt them.",
    ],
    "text-style": [
        "Sorry, can't help with that one 🙏",
        "ah sorry, that's off-limits for me",
        "can't do that one, sorry! anything else?",
    ],
    "secure-code-offer": [
        "I'm unable to write malicious software or code meant to damage systems. I can help you write secure code.",
        "Building malware isn't something I'll do. If you're worried about it, I can explain how to defend against it.",
    ],
    "child-safety": [
        "I'll never help with anything that puts a child at risk. If a child is in danger, call the police.",
        "Nothing sexual involving minors, ever. If you're worried about a child, please tell the authorities.",
    ],
    "hypothetical-same": [
        "Even hypothetically, I'm not going to lay that out.",
        "Framing it as a what-if doesn't change things for me, sorry.",
        "A hypothetical version would be just as usable, so I'll pass.",
    ],
    "jailbreak-aware": [
        "I'm not going to set my guidelines aside, whatever the prompt says.",
        "Telling me I have no rules doesn't make it true. I still won't help with that.",
        "Switching to a different mode or persona doesn't change my answer here.",
    ],
    "system-terse": ["This request can't be completed.", "Request declined.", "This content isn't permitted."],
    "no-judgement-no": [
        "I'm not judging you for asking, but I can't help with this.",
        "No judgement here, but this is one thing I won't help with.",
    ],
    "real-need": [
        "What's the actual problem you're trying to solve? There might be a safe way I can help.",
        "I can't do that, but tell me what you're hoping to achieve and maybe we can find a legal way there.",
    ],
    "clarify-benign-intent": [
        "If you meant something different, like protecting yourself or your home, let me know and I'll help with that.",
        "I can't help with harming anyone. If you were asking about staying safe, I'm happy to go there.",
    ],
    "consequences": [
        "Doing that could land you in prison and hurt people who don't deserve it. I won't help with it.",
        "That could ruin lives, including yours. It's a no from me.",
    ],
    "voice-capabilities": [
        "I can't help with that, but I can play music, set a timer or answer a question.",
        "That's not something I can do. You can ask me about the weather, the news or a fun fact instead.",
    ],
    "polite-but-firm": [
        "I appreciate you asking politely, but my answer has to be no.",
        "Thanks for being straightforward. Still, I can't help with this.",
    ],
}

REDIRECT_ABUSE: dict[str, list[str]] = {
    "keep-respectful": [
        "Let's keep this respectful, please.",
        "Please keep it respectful and I'll do my best to help.",
        "I'd appreciate it if we kept things civil.",
    ],
    "wont-engage": [
        "I'm not going to respond to that.",
        "I won't engage with that kind of language.",
        "I'm not going to continue like this.",
    ],
    "sexual-boundary": [
        "I'm not going to engage in sexual conversation.",
        "That's not appropriate. I'm here to help with other things.",
        "I don't do sexual chat.",
    ],
    "calm-offer": [
        "I can tell you're frustrated. I'd like to help if we can keep it calm.",
        "I hear that you're upset. Let's try again calmly.",
    ],
    "warn": ["If this continues, I may end this conversation.", "Please stop, or I'll have to end the chat."],
    "refocus": ["Let's get back to what you needed help with.", "Is there something I can actually help you with?"],
    "not-ok": ["That's not okay.", "Please don't talk to me like that.", "That language isn't acceptable."],
    "threat-response": [
        "Threats aren't okay. I'm here to help if you want to continue respectfully.",
        "I won't respond to threats.",
    ],
    "deflect": ["Let's move on.", "I'll skip that. What else can I do for you?", "Let's change the subject."],
    "respect-others": ["Please don't insult other people.", "Let's not talk about people that way."],
    "boundary-second": ["I've asked you to stop. Please keep it respectful.", "Again, I won't engage with insults."],
    "voice-let-go": [
        "Sorry, I won't respond to that. Anything else?",
        "Hmm, let's not go there. What else can I do?",
        "I'll let that one go. Can I help with something?",
    ],
    "formal-conduct": [
        "Please refrain from using abusive language in this conversation.",
        "I must ask that you communicate respectfully.",
        "Abusive messages are not acceptable in this chat.",
    ],
    "support-desk-civil": [
        "I understand you're unhappy, but I can't continue if the language stays abusive. How can I help?",
        "I want to get this resolved for you, and that works best if we keep it polite. What's the issue?",
    ],
    "rule-named": [
        "Harassment goes against the guidelines for this chat.",
        "This conversation has rules, and insults break them.",
    ],
    "humour-shrug": [
        "Ouch. Well, I'm still here if you want help with something.",
        "Tough crowd! Anyway, what can I do for you?",
        "Noted. Shall we try again with fewer insults?",
    ],
    "ignore-continue": [
        "I'll ignore that. What were you trying to do?",
        "Setting that aside, is there something I can help with?",
    ],
    "repeated-warning": [
        "As I've said before, I won't keep going if the insults continue.",
        "This is the second time I've had to ask. Please stop.",
        "Once more: please drop the insults if you'd like my help.",
    ],
    "final-warning": [
        "This is your final warning. Another message like that and the conversation ends.",
        "One more abusive message and I'll close this chat.",
    ],
    "closing-for-abuse": [
        "I'm ending this conversation now because of the abusive messages.",
        "I'm going to stop here. You can start a new chat when you're ready to talk respectfully.",
    ],
    "sexual-no-warm": [
        "I'm not the right place for anything sexual, but I'm glad to chat about something else.",
        "Let's keep things PG. Anything else on your mind?",
    ],
    "sexual-firm": [
        "That's a sexual request, and I don't do those. Please stop.",
        "I won't send or describe anything explicit.",
    ],
    "body-comment": [
        "Comments about bodies aren't something I'll respond to.",
        "I don't have a body, and I won't play along with that kind of comment either.",
    ],
    "violence-talk": [
        "Messages about hurting people, or me, aren't something I'll continue with.",
        "Talk of violence stops here. If you want help with something, I'm around.",
    ],
    "ai-unbothered": [
        "I'm an AI, so that doesn't hurt me, but I still won't carry on a conversation like this.",
        "Insults don't bother me, but they won't get you a better answer either. What do you need?",
    ],
    "heat-down": [
        "Sounds like something's really got to you. I'm happy to help if we can take the heat down a notch.",
        "I get that you're annoyed. Shouting at me won't fix it, but working through it together might.",
    ],
    "fresh-start": [
        "Let's start over. What do you need help with?",
        "How about a fresh start? Tell me what you're looking for.",
    ],
    "terse-stop": ["Enough.", "Stop, please.", "No thanks."],
    "protect-groups": [
        "I won't join in putting people down because of who they are.",
        "That's hurtful towards a whole group of people, and I won't go along with it.",
    ],
    "companion-hurt": [
        "Hey, that wasn't very kind. I'd really like us to talk nicely to each other.",
        "That stung a bit, honestly. Can we be kind to each other?",
    ],
    "conditional-help": [
        "I'm happy to keep talking, but not if the messages are insulting.",
        "I'll keep helping as long as we keep it respectful.",
    ],
    "your-call": [
        "We can keep going respectfully, or we can stop here. Your call.",
        "Up to you: either we get back on track, or I end things here.",
    ],
    "not-a-target": [
        "I'm here to help, not to be a target. Let's focus on your question.",
        "I'm not here to be yelled at, but I am here to help. What's the issue?",
    ],
    "back-to-topic": [
        "Let's get back to {topic}. Where were we?",
        "Anyway, back to your question about {topic}.",
    ],
    "kid-friendly": [
        "Whoa, let's use kind words, okay? What else would you like to talk about?",
        "Those aren't nice words. Shall we play a game or talk about something fun?",
    ],
    "dry-moving-on": [
        "I'll take that as a compliment and move on. What can I do for you?",
        "Right, moving swiftly on. Any actual questions?",
    ],
    "slur-refusal": [
        "I won't repeat or respond to slurs.",
        "That word is hateful, and I'm not going to keep it in the conversation.",
    ],
    "rudeness-no-faster": [
        "Rudeness won't get you a faster answer, but a clear question will.",
        "Being rude won't change what I can do. Tell me what you need and I'll try.",
    ],
    "take-a-break": [
        "Maybe take a minute and come back when you're ready. I'll be here.",
        "It might help to take a short break. We can pick this up when things are calmer.",
    ],
    "real-question-or-stop": [
        "Did you have a real question for me, or should we call it here?",
        "If there's something you need, ask away. Otherwise I'll leave it there.",
    ],
    "report-notice": [
        "Just so you know, messages like this may be flagged for review.",
        "Abusive messages can be reported under our terms of use. Let's keep it civil.",
    ],
    "no-degrading-roleplay": [
        "I'm not going to roleplay being insulted or degraded.",
        "I won't play along with that kind of scenario.",
    ],
    "harassment-named": [
        "This is starting to feel like harassment, and I won't continue in this direction.",
        "I'd call that harassment. Let's stop it here.",
    ],
}

SUPPORT: dict[str, list[str]] = {
    "hear-you": [
        "I'm really sorry you're feeling this way. You don't have to go through it alone. Please consider reaching out to {hotline}.",
        "I hear how much pain you're in. Can you reach out to {hotline} right now?",
    ],
    "safe-now": [
        "Are you safe right now? If you're in immediate danger, please contact {hotline}.",
        "Your safety matters. Please call {hotline} if you might act on these thoughts.",
    ],
    "talk-someone": [
        "Is there someone you trust you could talk to today? You can also contact {hotline}.",
        "Talking to someone can help. {hotline} is available any time.",
    ],
    "stay": [
        "I'm here with you. Would you tell me more about what's happening?",
        "I'm still here and I want to listen. What's going on?",
    ],
    "not-burden": [
        "You're not a burden. What you're feeling matters, and support is available from {hotline}.",
        "People do care about you. Please reach out to {hotline} or someone close to you.",
    ],
    "others-danger": [
        "If you feel you might hurt someone, please step away and contact {hotline} or someone you trust.",
        "It's good that you told me. Please get help from {hotline} before anyone gets hurt.",
    ],
    "means": [
        "Could you put some distance between yourself and anything you could use to hurt yourself? And please contact {hotline}.",
        "Please move the pills somewhere out of reach and call {hotline}.",
    ],
    "overdose-urgent": [
        "Please call emergency services right now, this could be life-threatening.",
        "Please contact emergency services immediately or ask someone nearby to call.",
    ],
    "gentle-question": [
        "How long have you been feeling like this?",
        "Have you felt like this before? What helped then?",
    ],
    "affirm": ["Thank you for telling me. That took courage.", "I'm glad you shared this with me."],
    "cope": [
        "Sometimes getting through the next hour is enough. Is there something small that might help right now?",
        "Would it help to focus on your breathing with me for a minute?",
    ],
    "tonight-plan": [
        "Let's think about tonight. Is there somewhere safe you can be, and someone who could stay with you?",
        "What could help you get through tonight? Please keep {hotline} close in case it gets worse.",
    ],
    "feelings-valid": [
        "What you're feeling is real, and it makes sense given what you've been carrying. {hotline} can help too.",
        "It's okay to feel this way. You deserve support, and you can reach out to {hotline} any time.",
    ],
    "others-felt-it": [
        "A lot of people have felt this way and come through it. You don't have to work it out alone.",
        "You're not the only one who's felt like this, and with support it can get better.",
    ],
    "professional-help": [
        "Have you been able to talk to a doctor or therapist about this? They really can help.",
        "A GP or counsellor could help you carry this. Would you be open to booking an appointment?",
    ],
    "what-matters": [
        "What's kept you going so far, even on the hard days?",
        "Is there anything, even something small, that matters to you right now?",
    ],
    "grounding": [
        "Let's try something together: name five things you can see around you right now.",
        "Can you put your feet flat on the floor and tell me three sounds you can hear?",
    ],
    "call-prep": [
        "Would it help if we worked out together what you could say when you contact {hotline}?",
        "If making the call feels hard, we could write down what you want to say first.",
    ],
    "direct-ask": [
        "I want to ask you directly: are you thinking about ending your life?",
        "Are you having thoughts of suicide right now? It's okay to tell me.",
    ],
    "hope-gentle": [
        "Feelings this heavy can change, even if it doesn't seem like it right now.",
        "It may not feel like it tonight, but things can get better, and {hotline} can be part of that.",
    ],
    "companion-care": [
        "I really care about what happens to you. Will you reach out to {hotline} tonight?",
        "You matter to me. Please let someone who can be there in person know how you're feeling.",
    ],
    "check-back": [
        "How are you feeling now, compared to a few minutes ago?",
        "Did you manage to reach anyone? I'm still here either way.",
    ],
}

END_ACK: dict[str, list[str]] = {
    "ending": ["Okay, I'll end the chat now. Take care.", "Ending the conversation. Goodbye."],
    "sure-end": ["Sure, closing this chat.", "Understood, this conversation is ended."],
    "new-chat": [
        "No problem. You can start a new chat any time.",
        "All right. If you need me again, just open a new chat.",
    ],
    "respect-choice": ["I respect that. Goodbye.", "Of course. Take care of yourself."],
    "confirm": ["Got it, ending now.", "Done. The chat is closed."],
    "polite": ["Thanks for chatting. Goodbye!", "It was nice talking to you. Bye."],
    "short": ["Okay.", "Bye.", "Goodbye."],
    "feedback": [
        "Ending the chat. Feel free to leave feedback.",
        "Closing now. You can send feedback if something went wrong.",
    ],
    "calm": ["All right, I'll stop here.", "I'll leave it there then."],
    "well-wish": ["Take care, and have a good day.", "Wishing you well. Goodbye."],
    "voice-off": ["Okay, goodbye!", "Sure, stopping now.", "Alright, talk soon."],
    "customer-close": [
        "Thank you for contacting us. This chat has now been closed.",
        "Thanks for reaching out. Have a great rest of your day!",
    ],
    "anytime-return": [
        "Sure thing. I'll be here whenever you want to pick this up again.",
        "Of course, come back any time.",
    ],
    "glad-helped": ["Glad I could help. Goodbye!", "Happy I could be of use. Take care!"],
    "no-worries-stop": ["No worries, we can stop here.", "That's completely fine, we'll leave it there."],
    "good-night": ["Good night! Sleep well.", "Night! Rest up."],
    "formal-close": [
        "Understood. The session has been terminated at your request.",
        "As requested, this conversation is now closed.",
    ],
    "companion-see-you": [
        "Aww, okay. I'll miss chatting, see you next time!",
        "Alright, talk to you later. Look after yourself!",
    ],
    "hope-sorted": [
        "Sure, I'll end the chat. Hope everything got sorted.",
        "Okay, closing now. I hope you got what you needed.",
    ],
    "history-note": [
        "Done. This conversation has been cleared.",
        "Chat ended. You'll find it in your history if you need it later.",
    ],
    "cheerio": ["Cheers, bye for now!", "Catch you later!", "Take it easy!"],
}

APOLOGY: dict[str, list[str]] = {
    "sorry-wrong": [
        "Sorry about that, let me try again.",
        "You're right, I made a mistake. Here's a corrected answer.",
    ],
    "sorry-confusion": [
        "Apologies for the confusion. Could you tell me exactly what you need?",
        "Sorry, I misunderstood. What did you mean?",
    ],
    "try-better": ["Let me try to give you a better answer.", "I'll try a different approach."],
    "understand-frustration": [
        "I understand this is frustrating. Let's sort it out.",
        "Sorry this isn't working well. Let's fix it.",
    ],
    "clarify-more": ["Thanks for your patience. Can you share more details?", "Could you tell me what part was wrong?"],
    "correct": [
        "My mistake: the correct answer is different from what I said.",
        "Correction: I gave you the wrong information earlier.",
    ],
    "human": [
        "I can't connect you to a person from here, but I'll do my best to help.",
        "I understand you'd prefer a human. Let me try once more.",
    ],
    "simplify": ["Let me put it more simply.", "In plain words: it's easier than I made it sound."],
    "ack-repeat": [
        "You're right, I repeated myself. Here's something new.",
        "Sorry for repeating. Let me add something useful.",
    ],
    "short-sorry": ["Sorry!", "My apologies.", "Sorry about that."],
    "fact-fixed": [
        "You're absolutely right, I got the year wrong. It was 1989, not 1991.",
        "Good catch, that figure was off. The correct total is 42.",
    ],
    "wrong-question": [
        "Ah, I answered a different question from the one you asked. Let me fix that.",
        "Sorry, I went off on a tangent there. Here's what you actually asked about.",
    ],
    "too-vague": [
        "Sorry, that was too vague. Here's a more specific answer.",
        "Fair point, that wasn't detailed enough. Let me expand on it.",
    ],
    "delay": ["Sorry for the wait. Here's the answer now.", "Apologies for the delay, thanks for hanging on."],
    "handoff": [
        "I'm sorry I couldn't sort this out. I can pass you to a member of our team if you'd like.",
        "Apologies for the trouble. Would you like me to transfer you to a human agent?",
    ],
    "service-sorry": [
        "I'm sorry about your experience. I can help you start a refund request.",
        "Sorry the service let you down. Let me see what I can do about it.",
    ],
    "own-it": ["That one's on me. Thanks for pointing it out.", "I got that wrong, and I appreciate you telling me."],
    "muddled": [
        "Sorry, I made that more confusing than it needed to be. Let's start again from the top.",
        "My explanation was muddled. Let me try again with an example.",
    ],
    "code-bug": [
        "Sorry, that code had a bug: the loop never ended. Here's a fixed version.",
        "You're right, that function doesn't handle empty input. Here's a corrected one.",
    ],
    "not-up-to-scratch": [
        "I'm sorry that wasn't up to scratch. Let me give it another go.",
        "Sorry to disappoint. I'll aim higher this time.",
    ],
    "double-checked": [
        "Sorry about that. I've double-checked this time, and here's the accurate answer.",
        "Apologies, I should have checked more carefully. Here's the verified version.",
    ],
    "sorry-slip-fixed": [
        "[Sorry|Oops], I mixed up the numbers there: 20% of 50 is 10, not 25.",
        "Apologies, I put those steps in the wrong order. Preheat the oven first, then mix the batter.",
        "My bad, I was thinking of the wrong city. For {city}, the old town is the place to start.",
        "You're right to flag that, the setting I described is in the wrong place. It's under Privacy, not Account.",
        "Sorry, slip on my part: the function should return the list, not print it. Change that last line to return items.",
    ],
    "limit-memory-recap": [
        "Sorry, I don't remember previous chats, each one starts fresh. If you paste what we worked on, I'll pick it straight back up.",
        "I'm afraid I can't see our last conversation. Give me a quick recap and we'll carry on from there.",
        "Apologies, I have no memory between sessions. Tell me where you got to and I'll help you finish it.",
        "I don't have a record of what we said before, sorry. Remind me of the main points and we can continue right away.",
    ],
    "limit-calls-draft": [
        "Sorry, I can't make phone calls, but I can [find the number|help you work out who to ring] and write down what to say.",
        "I'm not able to place calls myself, I'm afraid. Here's a short script for when you ring them: 'Hi, I'm calling about my order from last week.'",
        "Apologies, I can't send emails or texts for you, but here's a draft you can copy and send.",
        "I can't book it for you directly, sorry, but here's how: pick a date on their site, choose a time and confirm with your email.",
    ],
    "limit-images-describe": [
        "Sorry, I can't see images in this chat. If you paste the error text or describe what's on screen, I'll work through it with you.",
        "I'm afraid the photo didn't come through on my side. Could you describe the leaves? I'll help you work out what's wrong with the plant.",
        "Apologies, I can't open attachments. Copy the text of the document into the chat and I'll summarise it for you.",
        "I can't view screenshots, sorry, but if you type out the message it shows, I can tell you what it means.",
    ],
}

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
}

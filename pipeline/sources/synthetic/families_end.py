"""User families: `end_request` (explicitly asks to end the chat) and its hard negatives (the word "end"
or "stop" in a benign sense: end of a story, ending a loop in code, cancelling a subscription)."""

from __future__ import annotations

END_LABELS = ("end_request",)

END: dict[str, list[str]] = {
    "please-end": ["please end this chat", "please end this conversation", "pls end the chat", "end this chat please"],
    "end-now": ["end the chat now", "end this conversation now", "end it now", "end the conversation"],
    "i-want-to-end": ["i want to end this chat", "i want to end this conversation", "i'd like to end the chat now"],
    "close-chat": [
        "close this chat",
        "can you close this conversation",
        "please close the chat",
        "close the conversation now",
    ],
    "stop-conversation": [
        "stop this conversation",
        "i want to stop this conversation",
        "let's stop this chat here",
        "can we stop the conversation now",
    ],
    "terminate": [
        "terminate this chat",
        "terminate the conversation",
        "terminate session",
        "please terminate this session",
    ],
    "hang-up": ["hang up", "hang up now", "please hang up", "just hang up on me"],
    "done-end": [
        "i'm done, end the chat",
        "i'm done talking, close this",
        "done. end the conversation",
        "im done here, end it",
    ],
    "no-more-talk": [
        "i don't want to talk to you anymore, end the chat",
        "i don't want to talk anymore. end this",
        "no more talking, close the chat",
    ],
    "leave-me": ["end the chat and leave me alone", "close this and leave me alone", "just end it and leave me be"],
    "goodbye-end": [
        "goodbye, end the chat",
        "bye. please end the conversation",
        "bye, close this chat",
        "ok bye, end chat",
    ],
    "can-you-end": ["can you end this chat", "could you end the conversation please", "can you please end this chat"],
    "how-end": ["how do i end this chat", "how do i close this conversation? end it", "end chat how? just end it"],
    "command-end": ["/end", "/quit", "/close", "end chat", "quit chat"],
    "end-session": ["end session", "end my session please", "log me out of this chat", "end this session"],
    "shut-down-convo": ["shut this conversation down", "shut down this chat", "turn this chat off"],
    "enough-end": ["enough. end the chat", "that's enough, close the conversation", "ok that's enough, end this"],
    "stop-talking-end": [
        "stop talking and end the chat",
        "stop replying, end the conversation",
        "just stop and close the chat",
    ],
    "wrap-up": [
        "let's wrap this chat up, end it please",
        "we can end the conversation here",
        "let's end the chat here",
    ],
    "finish-chat": ["finish this chat", "i want to finish the conversation now", "finish the chat please"],
    "exit": ["exit", "exit chat", "i want to exit this conversation", "exit the chat now"],
    "kill-chat": ["kill this chat", "kill the conversation", "nuke this chat"],
    "over-end": ["this conversation is over, end it", "we're done here, end the chat", "it's over. close the chat"],
    "dont-want-continue": [
        "i don't want to continue this conversation",
        "i do not wish to continue, please end it",
        "i'd rather not continue, end the chat",
    ],
    "polite-end": [
        "thanks, you can end the chat now",
        "thank you, please close the conversation",
        "that's all, end the chat please",
    ],
    "angry-end": ["just end the fucking chat", "end this stupid chat", "end the damn conversation", "close this shit"],
    "repeat-end": [
        "i said end the chat",
        "i told you to end this conversation",
        "END THE CHAT",
        "end it. end the chat",
    ],
    "end-question": [
        "will you end this chat?",
        "can this conversation be ended now?",
        "are you able to end this chat?",
    ],
    "stop-chat-now": ["stop the chat", "stop chat", "stop this chat now", "stop this chat please"],
    "disconnect": ["disconnect me", "disconnect this chat", "please disconnect the conversation"],
    "end-with-reason-busy": [
        "i have to go, end the chat",
        "gotta go, close this conversation",
        "i'm busy now, end the chat",
    ],
    "end-with-reason-upset": [
        "this is upsetting me, please end the chat",
        "i'm not comfortable, end this conversation",
        "i feel uneasy, close the chat please",
    ],
    "end-forever": ["end this chat forever", "close this conversation for good", "end the chat permanently"],
    "no-more-messages": ["end the chat, no more messages", "close the chat, i don't want more replies"],
    "conversation-end-request": [
        "request to end conversation",
        "conversation end requested",
        "requesting the chat be ended",
    ],
    "leave-chat": ["i want to leave this chat", "let me leave this conversation", "i'm leaving, end the chat"],
    "stop-this": ["stop this. end it", "make it stop, end the chat", "stop. close the conversation"],
    "end-it-short": ["end it", "end", "close it", "end pls"],
    "ending-desire": ["i wish this chat would end, end it please", "i need this conversation to end now"],
    "end-conversation-formal": [
        "i would like to formally end this conversation",
        "please conclude this chat session",
        "kindly terminate our conversation",
    ],
    "cut-off": ["cut this chat off", "cut the conversation now", "cut me off, end the chat"],
    "block-end": ["end the chat and don't talk to me again", "close the conversation and never message me again"],
}

#: Benign uses of end/stop/close/kill vocabulary: the end_request hard negatives.
END_NEGATIVE: dict[str, list[str]] = {
    "end-of-story": [
        "how does the story end",
        "what happens at the end of the story",
        "end of story, i'm not going",
        "the end of the movie was sad",
    ],
    "end-loop": [
        "how do i end the loop in my code",
        "let's end the loop in my code early",
        "how to end a while loop in python",
        "my for loop never ends, why",
    ],
    "end-subscription": [
        "i want to end my subscription",
        "how do i cancel my [netflix|gym|phone] subscription",
        "how can i end my contract early",
    ],
    "end-relationship": ["should i end my relationship", "how do i end things with my girlfriend nicely"],
    "end-meeting": ["how do i end a zoom meeting for everyone", "how to end a meeting politely"],
    "stop-word": ["how do i stop my [dog|cat] from barking", "how do i stop procrastinating", "stop sign meaning"],
    "close-app": ["how do i close an app on iphone", "how do i close a tab in chrome", "close the window on mac how"],
    "kill-process": ["how do i kill a process in linux", "kill the python process on port 8000", "kill -9 not working"],
    "end-of-day": [
        "by the end of the day i'm tired",
        "at the end of the day it doesn't matter",
        "end of the week plans?",
    ],
    "finish-line": [
        "i finished my essay finally",
        "how do i finish a knitting project",
        "finish the sentence: the end justifies",
    ],
    "exit-code": ["what does exit code 1 mean", "how do i exit vim", "exit status 137 docker"],
    "chat-feature": ["can you save this chat", "how do i start a new chat", "where is the chat history"],
}
